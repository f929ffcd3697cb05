// Hash routes of the console's pages that several pages link to (app.tsx registers them).

/** A datastore's page: `#/storage/datastores/<host>/<name>`. */
export const datastorePath = (host: string, name: string): string =>
  `/storage/datastores/${encodeURIComponent(host)}/${encodeURIComponent(name)}`;
