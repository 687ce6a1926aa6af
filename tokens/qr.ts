/**
 * QR codes for enrollment URLs: a PNG data URI for API responses, UTF-8 half blocks for the terminal.
 * The qrcode package (with its PNG encoder, ~8 MB of RSS) is loaded on the first enrollment, not at start-up.
 */
type QrCodeModule = typeof import('qrcode');
let qrcode: Promise<QrCodeModule> | undefined;
const load = (): Promise<QrCodeModule> => (qrcode ??= import('qrcode').then((m) => (m as { default?: QrCodeModule }).default ?? m));

/** `data:image/png;base64,…` (error correction M). */
export async function qrDataUri(text: string): Promise<string> {
  return (await load()).toDataURL(text, { errorCorrectionLevel: 'M' });
}

/**
 * A compact text rendering (two modules per character row). `color`: with ANSI colour codes (a dark-on-light code
 * whatever the terminal's colours; only for a terminal), else plain UTF-8 half blocks (files, pipes, e-mail).
 */
export async function qrTerminal(text: string, opts: { color?: boolean } = {}): Promise<string> {
  const qr = await load();
  return (opts.color ?? true)
    ? qr.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'M' })
    : qr.toString(text, { type: 'utf8', errorCorrectionLevel: 'M' });
}
