/** QR codes for enrollment URLs: a PNG data URI for API responses, UTF-8 half blocks for the terminal. */
import QRCode from 'qrcode';

/** `data:image/png;base64,…` (error correction M). */
export function qrDataUri(text: string): Promise<string> {
  return QRCode.toDataURL(text, { errorCorrectionLevel: 'M' });
}

/** A compact terminal rendering (two modules per character row). */
export function qrTerminal(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'M' });
}
