import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";

import type { Schemas } from "../../api/client";
import { useApiKeys } from "../../api/queries";
import { useApi } from "../../auth/AuthProvider";
import { CopyButton, Empty, ErrorNotice, Loading, Status, TableBox, when } from "../../components/common";

/** The app's API keys: created here and shown once, listed without their secret, revoked here. */
export function ApiKeys({ datasetId }: { datasetId: string }) {
  const api = useApi();
  const queries = useQueryClient();
  const keys = useApiKeys(datasetId, true);
  const [created, setCreated] = useState<Schemas["ApiKeyCreated"]>();
  const [confirming, setConfirming] = useState<string>();
  const refresh = () => queries.invalidateQueries({ queryKey: ["datasets", datasetId, "api-keys"] });

  const create = useMutation({
    mutationFn: () =>
      api.call((c) => c.POST("/v1/datasets/{dataset_id}/api-keys", { params: { path: { dataset_id: datasetId } } })),
    onSuccess: (key) => {
      setCreated(key);
      void refresh();
    },
  });
  const revoke = useMutation({
    mutationFn: (keyId: string) =>
      api.call((c) =>
        c.DELETE("/v1/datasets/{dataset_id}/api-keys/{key_id}", {
          params: { path: { dataset_id: datasetId, key_id: keyId } },
        }),
      ),
    onSuccess: () => {
      setConfirming(undefined);
      void refresh();
    },
  });

  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">API keys</h2>
      <p>
        Your app sends its API key with each device's id to get a short-lived device token. Keys are stored only
        as a hash: Cohort cannot show one again.
      </p>
      {created && (
        <div className="notice secret" role="status" aria-live="polite">
          <p>
            <strong>Copy this key now: it is shown once.</strong> Put it in your app's configuration; anyone who holds
            it can enrol devices for your app, so treat it as a secret and revoke it if it leaks.
          </p>
          <p>
            <code className="api-key" aria-label="New API key">
              {created.api_key}
            </code>
          </p>
          <div className="actions">
            <CopyButton text={created.api_key} label="Copy the key" />
            <button type="button" className="secondary outline" onClick={() => setCreated(undefined)}>
              I have stored it
            </button>
          </div>
        </div>
      )}
      {create.isError && <ErrorNotice error={create.error} />}
      <button type="button" onClick={() => create.mutate()} aria-busy={create.isPending} disabled={create.isPending}>
        Create an API key
      </button>
      {keys.isPending ? (
        <Loading what="API keys" />
      ) : keys.isError ? (
        <ErrorNotice error={keys.error} retry={() => void keys.refetch()} />
      ) : keys.data.length === 0 ? (
        <Empty>
          <p>No keys yet: create one to let your app's devices take part in training.</p>
        </Empty>
      ) : (
        <TableBox label="API keys">
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Created</th>
              <th scope="col">State</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.data.map((key) => (
              <tr key={key.key_id}>
                <td>
                  <code>{key.key_id}</code>
                </td>
                <td>{when(key.created_at)}</td>
                <td>
                  <Status value={key.revoked ? "revoked" : "active"} />
                </td>
                <td>
                  {!key.revoked &&
                    (confirming === key.key_id ? (
                      <span className="actions">
                        <span>Devices using it get no new tokens.</span>
                        <button type="button" className="contrast" onClick={() => revoke.mutate(key.key_id)} aria-busy={revoke.isPending}>
                          Revoke {key.key_id}
                        </button>
                        <button type="button" className="secondary outline" onClick={() => setConfirming(undefined)}>
                          Keep it
                        </button>
                      </span>
                    ) : (
                      <button type="button" className="secondary outline" onClick={() => setConfirming(key.key_id)}>
                        Revoke…
                      </button>
                    ))}
                </td>
              </tr>
            ))}
          </tbody>
        </TableBox>
      )}
      {revoke.isError && <ErrorNotice error={revoke.error} />}
    </section>
  );
}
