import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import type { Db } from './db.js';

/*
 * Agent tokens at rest. The manager must call agents with them in clear, so they cannot be hashed
 * like API tokens; they are sealed with AES-256-GCM under a key kept in its own 0600 file beside
 * the database. A copy of manager.db (a backup, a file shared for a bug report) then holds no
 * usable agent token.
 */

const PREFIX = 'sealed:v1:';
const KEY_FILE = 'secrets.key';

export class SecretBox {
  constructor(private readonly key: Buffer) {}

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  /** The clear value; a value stored before sealing existed is returned as it is. */
  open(stored: string): string {
    if (!stored.startsWith(PREFIX)) return stored;
    const raw = Buffer.from(stored.slice(PREFIX.length), 'base64url');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(12, 28));
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      throw new Error(
        `the stored agent token cannot be unsealed: ${KEY_FILE} is not the key it was sealed with (remove and re-join the host)`,
      );
    }
  }

  static isSealed(stored: string): boolean {
    return stored.startsWith(PREFIX);
  }
}

/** Reads `<dataDir>/secrets.key`, creating it (0600) on the first start. */
export async function loadSecretBox(dataDir: string): Promise<SecretBox> {
  const file = path.join(dataDir, KEY_FILE);
  const read = async () => Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
  const code = (error: unknown) => (error as NodeJS.ErrnoException).code;
  let key: Buffer;
  try {
    key = await read();
  } catch (error) {
    if (code(error) !== 'ENOENT') throw error;
    key = randomBytes(32);
    try {
      // `wx`: of two managers starting on one data dir, the second reads the first one's key.
      await writeFile(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (writeError) {
      if (code(writeError) !== 'EEXIST') throw writeError;
      key = await read();
    }
  }
  if (key.length !== 32) throw new Error(`${file} does not hold a 32-byte key (base64)`);
  await chmod(file, 0o600);
  return new SecretBox(key);
}

/**
 * Seals the agent tokens that an older manager stored in clear. With secure_delete on (db.ts) and
 * the WAL checkpointed, no copy of the clear value is left in the files.
 */
export async function sealStoredAgentTokens(db: Db, box: SecretBox): Promise<number> {
  const rows = await db.selectFrom('hosts').select(['id', 'agent_token']).execute();
  const clear = rows.filter((r) => !SecretBox.isSealed(r.agent_token));
  for (const row of clear) {
    await db
      .updateTable('hosts')
      .set({ agent_token: box.seal(row.agent_token) })
      .where('id', '=', row.id)
      .execute();
  }
  if (clear.length) await sql`pragma wal_checkpoint(truncate)`.execute(db);
  return clear.length;
}
