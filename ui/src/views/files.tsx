/** Files: an `interactive` session on a device, to browse its folders, upload into one and download a file. */
import { useEffect, useState } from 'preact/hooks';
import { call, download, upload } from '../api.js';
import { DevicePicker } from './device-picker.js';

interface FileEntry {
  filename: string;
  size: number;
  mtime: string;
  is_dir: boolean;
}

const join = (dir: string, name: string): string => (dir === '.' ? name : `${dir}/${name}`);
const parent = (dir: string): string => (dir.includes('/') ? dir.slice(0, dir.lastIndexOf('/')) : '.');

export function Files() {
  const [device, setDevice] = useState('');
  const [sid, setSid] = useState<string | null>(null);
  const [dir, setDir] = useState('.');
  const [files, setFiles] = useState<FileEntry[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [reload, setReload] = useState(0);
  const base = sid ? `/sessions/${encodeURIComponent(sid)}` : '';
  const open = async (): Promise<void> => {
    setError(null);
    try {
      const s = await call<{ id: string }>('POST', '/sessions', {
        agent_id: device,
        session_type: 'interactive',
      });
      setSid(s.id);
      setDir('.');
    } catch (err) {
      setError(String(err));
    }
  };
  useEffect(() => {
    if (!sid) return;
    call<{ files: FileEntry[] }>('GET', `${base}/files?path=${encodeURIComponent(dir)}`).then(
      (l) => {
        setFiles(l.files);
        setError(null);
      },
      (err: unknown) => setError(String(err)),
    );
  }, [sid, dir, reload]);
  const onUpload = async (list: FileList | null): Promise<void> => {
    if (!list || list.length === 0) return;
    try {
      await upload(`${base}/upload?path=${encodeURIComponent(dir)}`, [...list]);
      setReload((r) => r + 1);
    } catch (err) {
      setError(String(err));
    }
  };
  return (
    <section>
      <h2>Files</h2>
      <div class="filters">
        <DevicePicker value={device} onChange={setDevice} />
        <button data-testid="open-files" disabled={!device} onClick={() => void open()}>
          Open
        </button>
        {sid && (
          <>
            <span data-testid="files-dir">{dir}</span>
            <label class="upload">
              Upload
              <input
                data-testid="upload"
                type="file"
                multiple
                onChange={(e) => void onUpload(e.currentTarget.files)}
              />
            </label>
          </>
        )}
      </div>
      {error && <p class="error">{error}</p>}
      {sid && (
        <table data-testid="files">
          <thead>
            <tr>
              <th>Name</th>
              <th>Size</th>
              <th>Modified</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {dir !== '.' && (
              <tr>
                <td>
                  <a href="javascript:void 0" onClick={() => setDir(parent(dir))}>
                    ..
                  </a>
                </td>
              </tr>
            )}
            {files.map((f) => (
              <tr key={f.filename} data-testid={`file-${f.filename}`}>
                <td>
                  {f.is_dir ? (
                    <a href="javascript:void 0" onClick={() => setDir(join(dir, f.filename))}>
                      {f.filename}/
                    </a>
                  ) : (
                    f.filename
                  )}
                </td>
                <td>{f.is_dir ? '' : f.size}</td>
                <td>{f.mtime}</td>
                <td>
                  {!f.is_dir && (
                    <button
                      onClick={() =>
                        void download(
                          `${base}/download_single?file=${encodeURIComponent(join(dir, f.filename))}`,
                          f.filename,
                        ).catch((err: unknown) => setError(String(err)))
                      }
                    >
                      Download
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
