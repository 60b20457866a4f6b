/** The aipd dashboard: log in with the API key, then the views, chosen by the URL's hash (#/sessions/ID). */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { apiKey, call, forgetApiKey, setApiKey } from './api.js';
import { Devices } from './views/devices.js';
import { Files } from './views/files.js';
import { Overview } from './views/overview.js';
import { SessionDetail, Sessions } from './views/sessions.js';
import { Terminal } from './views/terminal.js';
import './style.css';

const VIEWS = [
  ['overview', 'Overview'],
  ['devices', 'Devices'],
  ['sessions', 'Sessions'],
  ['terminal', 'Terminal'],
  ['files', 'Files'],
] as const;

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = (): void => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function Login({ onIn }: { onIn: () => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setApiKey(key.trim());
    try {
      await call('GET', '/api/clients');
      onIn();
    } catch (err) {
      forgetApiKey();
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <form class="login" onSubmit={(e) => void submit(e)}>
      <h1>aipd</h1>
      <label>
        API key
        <input
          data-testid="api-key"
          type="password"
          autocomplete="off"
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
      </label>
      <button type="submit" data-testid="login">
        Log in
      </button>
      {error && <p class="error">{error}</p>}
    </form>
  );
}

function App() {
  const [inside, setInside] = useState(apiKey() !== null);
  const hash = useHash();
  if (!inside) return <Login onIn={() => setInside(true)} />;
  const [view = 'overview', id] = hash.replace(/^#\/?/, '').split('/');
  const page =
    view === 'devices' ? (
      <Devices />
    ) : view === 'sessions' && id ? (
      <SessionDetail id={decodeURIComponent(id)} />
    ) : view === 'sessions' ? (
      <Sessions />
    ) : view === 'terminal' ? (
      <Terminal />
    ) : view === 'files' ? (
      <Files />
    ) : (
      <Overview />
    );
  return (
    <>
      <nav>
        <strong>aipd</strong>
        {VIEWS.map(([v, label]) => (
          <a key={v} href={`#/${v}`} class={v === view ? 'on' : ''} data-testid={`nav-${v}`}>
            {label}
          </a>
        ))}
        <button
          class="logout"
          onClick={() => {
            forgetApiKey();
            setInside(false);
          }}
        >
          Log out
        </button>
      </nav>
      <main>{page}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
