// The console's frame: who is signed in to which manager, the sections, and the pages' routes.
// Hash routes (`#/vms/web1`): every address is a page of its own, and the manager serves one file.
import { lazy, Suspense } from 'react';
import { HashRouter, NavLink, Route, Routes } from 'react-router';
import { useFabricEvents } from './events.js';
import { FabricPage } from './pages/fabric.js';
import { NotFoundPage } from './pages/not-found.js';
import { Loading } from './parts/states.js';
import { useSession } from './session.js';

// Each page but the first is its own chunk, loaded when first shown (ECharts only with a chart).
const ChangesPage = lazy(() => import('./pages/changes.js').then((m) => ({ default: m.ChangesPage })));
const DatastorePage = lazy(() => import('./pages/datastore.js').then((m) => ({ default: m.DatastorePage })));
const HostPage = lazy(() => import('./pages/host.js').then((m) => ({ default: m.HostPage })));
const MovesPage = lazy(() => import('./pages/moves.js').then((m) => ({ default: m.MovesPage })));
const PlacementPage = lazy(() => import('./pages/placement.js').then((m) => ({ default: m.PlacementPage })));
const StoragePage = lazy(() => import('./pages/storage.js').then((m) => ({ default: m.StoragePage })));
const ToolsPage = lazy(() => import('./pages/tools.js').then((m) => ({ default: m.ToolsPage })));
const VmPage = lazy(() => import('./pages/vm.js').then((m) => ({ default: m.VmPage })));

const SECTIONS = [
  { to: '/', label: 'Fabric', end: true },
  { to: '/moves', label: 'Moves' },
  { to: '/storage', label: 'Storage Explorer' },
  { to: '/changes', label: 'Change Explorer' },
  { to: '/placement', label: 'Placement' },
  { to: '/tools', label: 'Tools & copies' },
];

export function App() {
  const session = useSession();
  const live = useFabricEvents();
  return (
    <HashRouter>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">Silobreak</span>
        <nav aria-label="Sections">
          {SECTIONS.map((s) => (
            <NavLink key={s.to} to={s.to} end={s.end ?? false}>
              {s.label}
            </NavLink>
          ))}
        </nav>
        <div className="who" aria-label="Signed in">
          <span title="Manager">
            {location.host} · v{session.info.version}
          </span>
          <span
            className={live ? 'live on' : 'live'}
            title={live ? 'Live updates on' : 'Live updates reconnecting'}
          >
            {live ? 'live' : 'reconnecting'}
          </span>
          <span>
            {session.info.token.name} ({session.info.token.role})
          </span>
          <button type="button" onClick={session.signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading what="the page" />}>
          <Routes>
            <Route path="/" element={<FabricPage />} />
            <Route path="/hosts/:host" element={<HostPage />} />
            <Route path="/vms/:vm" element={<VmPage />} />
            <Route path="/moves" element={<MovesPage />} />
            <Route path="/storage" element={<StoragePage />} />
            <Route path="/storage/datastores/:host/:datastore" element={<DatastorePage />} />
            <Route path="/changes" element={<ChangesPage />} />
            <Route path="/placement" element={<PlacementPage />} />
            <Route path="/tools" element={<ToolsPage />} />
            <Route path="*" element={<NotFoundPage />} />
          </Routes>
        </Suspense>
      </main>
    </HashRouter>
  );
}
