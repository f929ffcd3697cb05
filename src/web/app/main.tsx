import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app.js';
import { SessionGate } from './session.js';
import './styles.css';

const queryClient = new QueryClient({
  defaultOptions: {
    // Pages stay fresh through the fabric's event stream; a refetch on focus covers a dropped one.
    queries: { staleTime: 30_000, retry: 1, refetchOnWindowFocus: true },
  },
});

const root = document.getElementById('root');
if (root)
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <SessionGate>
          <App />
        </SessionGate>
      </QueryClientProvider>
    </StrictMode>,
  );
