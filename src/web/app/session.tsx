// Who is signed in: the API token (kept in session storage only, never in a URL), what the
// manager says about it (name, role), and whether this token may change anything.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { createContext, useContext, useState, type FormEvent, type ReactNode } from 'react';
import { ApiError, call, describeError, type Output } from './api.js';

const TOKEN_KEY = 'silobreak.token';

export interface Session {
  token: string;
  info: Output<'getInfo'>;
  /** Admin tokens may act; read-only tokens see no write action at all. */
  canWrite: boolean;
  signOut(): void;
}

const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside SessionGate');
  return session;
}

function storedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

/** Shows the sign-in form until a token the manager accepts is given, then the console. */
export function SessionGate({ children }: { children: ReactNode }) {
  const [token, setToken] = useState<string | undefined>(storedToken);
  const queryClient = useQueryClient();
  const info = useQuery({
    queryKey: ['session', token],
    queryFn: ({ signal }) => call('getInfo', {}, token ?? '', signal),
    enabled: token !== undefined,
    retry: false,
    staleTime: Infinity,
  });
  const signOut = () => {
    sessionStorage.removeItem(TOKEN_KEY);
    queryClient.clear();
    setToken(undefined);
  };
  // Once signed in, a failed re-read (the manager restarting) keeps the session; a refused token ends it.
  const rejected = info.error instanceof ApiError && info.error.code === 'unauthorized';
  if (token === undefined || (info.isError && (info.data === undefined || rejected))) {
    return (
      <SignIn
        error={
          info.isError
            ? rejected
              ? 'The manager did not accept that token.'
              : describeError(info.error)
            : undefined
        }
        onToken={(t) => {
          sessionStorage.setItem(TOKEN_KEY, t);
          setToken(t);
        }}
      />
    );
  }
  if (!info.data)
    return (
      <main className="signin" aria-busy="true">
        <p>Signing in…</p>
      </main>
    );
  const session: Session = { token, info: info.data, canWrite: info.data.token.role === 'admin', signOut };
  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}

function SignIn({ error, onToken }: { error: string | undefined; onToken: (token: string) => void }) {
  const [value, setValue] = useState('');
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (value.trim()) onToken(value.trim());
  };
  return (
    <main className="signin">
      <h1>Silobreak</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          required
        />
        <button type="submit">Sign in</button>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <p className="hint">
          <code>npm start</code> prints an admin token;{' '}
          <code>silobreak token create NAME --role read-only</code> makes one that can only look.
        </p>
      </form>
    </main>
  );
}
