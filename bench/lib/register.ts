/** The `register` frame a bench device sends: a Linux device unless `metadata` says otherwise. */
export function deviceRegister(
  clientId: string,
  metadata: Record<string, unknown> = { platform: 'linux' },
): Record<string, unknown> {
  return { type: 'register', status: 'ok', client_type: 'device', client_id: clientId, metadata };
}
