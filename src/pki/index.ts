// The fabric's X.509 (certificate authority, host and manager certificates, revocation lists),
// made with openssl. Imports no other part: the manager issues with it, agents and the lab read.
export * from './x509.js';
