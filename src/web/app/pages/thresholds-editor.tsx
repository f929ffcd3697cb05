// A datastore's storage rule thresholds: each one's default, override and effective value; admins
// change overrides (an emptied field goes back to the default), read-only tokens only read them.
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useAction, useApi } from '../hooks.js';
import { useSession } from '../session.js';
import { Failed, Loaded } from '../parts/states.js';
import { checkedPatchOf, formOf, THRESHOLD_FIELDS, type ThresholdForm } from './thresholds.js';

export function ThresholdsEditor({ host, datastore }: { host: string; datastore: string }) {
  const { canWrite } = useSession();
  const query = useApi('getStorageThresholds', { params: { host, datastore } });
  const patch = useAction('patchStorageThresholds');
  const [form, setForm] = useState<ThresholdForm | undefined>(undefined);
  const [problem, setProblem] = useState<string | undefined>(undefined);
  const [saved, setSaved] = useState(false);
  const overrides = query.data?.overrides;

  // The form starts from (and after a save returns to) the stored overrides.
  useEffect(() => {
    if (overrides) setForm(formOf(overrides));
  }, [overrides]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!form || !overrides || !query.data) return;
    setSaved(false);
    const result = checkedPatchOf(form, overrides, query.data.defaults);
    if (!result.ok) {
      setProblem(result.message);
      return;
    }
    setProblem(undefined);
    patch.mutate({ params: { host, datastore }, body: result.patch }, { onSuccess: () => setSaved(true) });
  };

  return (
    <Loaded query={query} what="thresholds">
      {(t) => (
        <form className="thresholds" onSubmit={submit} aria-label={`Thresholds of ${host}/${datastore}`}>
          <table>
            <caption>
              Storage rule thresholds of {host}/{datastore}
              {canWrite ? ' (leave a field empty for the default)' : ''}
            </caption>
            <thead>
              <tr>
                <th scope="col">Threshold</th>
                <th scope="col" className="num">
                  Default
                </th>
                <th scope="col" className="num">
                  Override
                </th>
                <th scope="col" className="num">
                  In effect
                </th>
              </tr>
            </thead>
            <tbody>
              {THRESHOLD_FIELDS.map(({ key, label }) => (
                <tr key={key} className={t.overrides[key] !== undefined ? 'overridden' : undefined}>
                  <th scope="row">{label}</th>
                  <td className="num">{t.defaults[key]}</td>
                  <td className="num">
                    {canWrite ? (
                      <input
                        type="text"
                        inputMode="decimal"
                        size={10}
                        aria-label={label}
                        placeholder="default"
                        value={form?.[key] ?? ''}
                        onChange={(e) => setForm({ ...form, [key]: e.target.value })}
                      />
                    ) : (
                      (t.overrides[key] ?? '—')
                    )}
                  </td>
                  <td className="num">{t.effective[key]}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {problem && (
            <p className="error" role="alert">
              {problem}
            </p>
          )}
          {patch.isError && <Failed error={patch.error} />}
          {canWrite && (
            <div className="actions">
              {saved && !patch.isPending && <span role="status">Thresholds saved.</span>}
              <button type="button" onClick={() => setForm(formOf(t.overrides))}>
                Undo edits
              </button>
              <button type="submit" className="primary" disabled={patch.isPending}>
                Save thresholds
              </button>
            </div>
          )}
        </form>
      )}
    </Loaded>
  );
}

/** The editor in a modal dialog (the Storage Explorer opens it from a datastore's row). */
export function ThresholdsDialog({
  target,
  onClose,
}: {
  target: { host: string; datastore: string } | undefined;
  onClose: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (target && !d.open) d.showModal();
    if (!target && d.open) d.close();
  }, [target]);
  return (
    <dialog ref={dialog} className="dialog" aria-labelledby="thresholds-title" onCancel={onClose}>
      <h2 id="thresholds-title">Thresholds{target ? ` of ${target.host}/${target.datastore}` : ''}</h2>
      {target && <ThresholdsEditor host={target.host} datastore={target.datastore} />}
      <div className="actions">
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
    </dialog>
  );
}
