/**
 * The self-service page's HTML: a tagged template that escapes every interpolated value (only an `Html` value — the
 * result of `html` itself — goes in as it is), the page frame and the style sheet. No script anywhere: the Content
 * Security Policy allows none. Accessible markup: `lang`, one `h1` per page, labels for every field, errors as text
 * with role="alert" (never only a colour), a skip link, visible focus.
 */

/** Markup that is already safe. Made only by `html` (and `raw` for constant strings in this folder). */
export class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };
export const escapeHtml = (s: string): string => s.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);

type Value = Html | string | number | boolean | null | undefined | readonly Value[];

function render(v: Value): string {
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v === null || v === undefined || v === false) return '';
  return escapeHtml(String(v));
}

/** `html\`<p>${text}</p>\``: every value escaped unless it is Html. */
export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return new Html(out);
}

/** A notice for the page: `error` is announced (role="alert") and marked with the word "Error", not only a colour. */
export interface Notice {
  readonly kind: 'error' | 'info';
  readonly text: string;
}

export function notice(n: Notice | null | undefined): Html {
  if (!n) return html``;
  return n.kind === 'error'
    ? html`<div class="notice error" role="alert"><strong>Error:</strong> ${n.text}</div>`
    : html`<div class="notice info" role="status">${n.text}</div>`;
}

/** The whole document around a page's main content. */
export function page(base: string, title: string, main: Html, header: Html = html``): string {
  return `<!doctype html>\n${
    html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${title} – pushgate self-service</title>
<link rel="stylesheet" href="${base}/style.css">
</head>
<body>
<a class="skip" href="#main">Skip to the content</a>
<header class="top"><span class="brand">pushgate self-service</span>${header}</header>
<main id="main" tabindex="-1">
${main}
</main>
</body>
</html>
`.text
  }`;
}

/** A form that POSTs to `action` with the session's synchronizer token. */
export function form(action: string, csrf: string, body: Html, extra: { className?: string; label?: string } = {}): Html {
  return html`<form method="post" action="${action}"${extra.className ? html` class="${extra.className}"` : ''}${
    extra.label ? html` aria-label="${extra.label}"` : ''
  }><input type="hidden" name="csrf" value="${csrf}">${body}</form>`;
}

export const STYLE = `
:root { color-scheme: light; --fg: #1a1a1a; --muted: #555; --line: #c8c8c8; --accent: #0b57a4; --bg: #fff; --soft: #f3f5f8;
  --err: #a40e0e; --ok: #17632b; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg); line-height: 1.5; font-size: 1rem; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; z-index: 1; }
.top { display: flex; justify-content: space-between; align-items: center; gap: 1rem; padding: .75rem 1.5rem;
  border-bottom: 1px solid var(--line); background: var(--soft); flex-wrap: wrap; }
.brand { font-weight: 600; }
.top form { margin: 0; }
.top button { margin-top: 0; }
main { max-width: 52rem; margin: 0 auto; padding: 1.5rem; }
main:focus { outline: none; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .75rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
h3 { font-size: 1.05rem; margin: 0 0 .5rem; }
label { display: block; font-weight: 600; margin: .75rem 0 .25rem; }
input[type=text], input[type=password], select { display: block; width: 100%; max-width: 24rem; padding: .5rem; font-size: 1rem;
  border: 1px solid #767676; border-radius: 4px; }
input.code { max-width: 10rem; letter-spacing: .15em; font-variant-numeric: tabular-nums; }
button { margin-top: 1rem; padding: .5rem 1rem; font-size: 1rem; border-radius: 4px; border: 1px solid var(--accent);
  background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: #fff; color: var(--err); border-color: var(--err); }
:focus-visible { outline: 3px solid #f2a900; outline-offset: 2px; }
.notice { padding: .75rem 1rem; border-radius: 4px; margin: 1rem 0; border-left: 6px solid; }
.notice.error { border-color: var(--err); background: #fbeaea; }
.notice.info { border-color: var(--ok); background: #e9f5ec; }
.hint { color: var(--muted); font-size: .95rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 1rem; margin: 0 0 1rem; }
.card .meta { color: var(--muted); font-size: .95rem; margin: 0 0 .5rem; }
.actions { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-end; }
.actions form { margin: 0; }
.check { display: flex; gap: .5rem; align-items: center; font-weight: normal; }
.qr { display: block; width: 240px; height: 240px; image-rendering: pixelated; border: 1px solid var(--line); }
code.secret { font-size: 1.05rem; word-break: break-all; background: var(--soft); padding: .1rem .3rem; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
caption { text-align: left; padding: 0 0 .5rem; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--soft); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(15rem, 1fr)); gap: 1rem; }
`;
