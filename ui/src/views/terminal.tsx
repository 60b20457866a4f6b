/**
 * A terminal: xterm.js on a `Standard_Stream` session (a shell in a PTY on the device). The session's single-use
 * token goes in the stream socket's first frame (aipd.stream.v1), not in its URL; keys go out as binary stdin,
 * output comes back as `0x01`/`0x02` + bytes, a resize as a text frame.
 */
import { FitAddon } from '@xterm/addon-fit';
import { Terminal as XTerm } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { useEffect, useRef, useState } from 'preact/hooks';
import { call } from '../api.js';
import { DevicePicker } from './device-picker.js';

interface StreamStart {
  id: string;
  stream_url: string;
  token_value: string;
}

export function Terminal() {
  const [device, setDevice] = useState('');
  const [session, setSession] = useState<StreamStart | null>(null);
  const [state, setState] = useState('');
  const [error, setError] = useState<string | null>(null);
  const box = useRef<HTMLDivElement>(null);
  const open = async (): Promise<void> => {
    setError(null);
    try {
      setSession(
        await call<StreamStart>('POST', '/sessions', {
          agent_id: device,
          session_type: 'Standard_Stream',
          // SSM's shape: each parameter is a list of one string
          parameters: { rows: ['24'], cols: ['100'] },
        }),
      );
    } catch (err) {
      setError(String(err));
    }
  };
  useEffect(() => {
    if (!session || !box.current) return;
    const term = new XTerm({ rows: 24, cols: 100, convertEol: false, fontSize: 13 });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(box.current);
    const ws = new WebSocket(session.stream_url, 'aipd.stream.v1');
    ws.binaryType = 'arraybuffer';
    const enc = new TextEncoder();
    ws.onopen = () =>
      ws.send(JSON.stringify({ token: session.token_value, rows: term.rows, cols: term.cols }));
    ws.onmessage = (m: MessageEvent<ArrayBuffer | string>) => {
      if (typeof m.data === 'string') {
        const msg = JSON.parse(m.data) as { type: string; exit_code?: number | null; message?: string };
        if (msg.type === 'ready') setState('connected');
        else if (msg.type === 'exit') setState(`exited (${msg.exit_code ?? 'signal'})`);
        else if (msg.type === 'error') setState(`error: ${msg.message ?? ''}`);
        return;
      }
      term.write(new Uint8Array(m.data, 1));
    };
    ws.onclose = () => setState((s) => (s.startsWith('exited') || s.startsWith('error') ? s : 'closed'));
    const input = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
    const resize = term.onResize(({ rows, cols }) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', rows, cols }));
    });
    term.focus();
    return () => {
      input.dispose();
      resize.dispose();
      ws.close();
      term.dispose();
    };
  }, [session]);
  return (
    <section>
      <h2>Terminal</h2>
      <div class="filters">
        <DevicePicker value={device} onChange={setDevice} />
        <button data-testid="open-terminal" disabled={!device} onClick={() => void open()}>
          Open a shell
        </button>
        {session && (
          <span data-testid="terminal-state">
            session <a href={`#/sessions/${encodeURIComponent(session.id)}`}>{session.id}</a>:{' '}
            {state || 'opening'}
          </span>
        )}
      </div>
      {error && <p class="error">{error}</p>}
      <div class="term" ref={box} data-testid="terminal" />
    </section>
  );
}
