// Safe Markdown for chat replies (issue #8). Model output is untrusted text: rendering it must
// never run script, never load anything (images, CSS, fonts, frames) and never submit a form.
//
//   renderMarkdown(text) -> DocumentFragment      renderInto(element, text)  (replaces children)
//
// Three gates, in order; each alone keeps out what it is aimed at:
//   1. markdown-it parses with html: false, so raw HTML in the text stays visible text. A core rule
//      (chatSafety) then rewrites the tokens: a link whose URL is not http(s)/mailto becomes its
//      text, an image becomes a link reading "image: alt" (never an <img>: nothing is fetched) or
//      plain text, and table alignment becomes a class instead of a style attribute.
//   2. DOMPurify sanitizes markdown-it's HTML in its own inert document against the allow-lists
//      below (elements, attributes, URL schemes; class only language-* on code, md-align-* on
//      cells; start only a number on ol). It knows nothing of Markdown, so a bug in gate 1 does
//      not pass through it.
//   3. finishLinks checks every surviving href once more, replaces a link without an allowed URL by
//      its children and gives the others rel/target (opening is the user's click; nothing here
//      fetches).
// Streaming: the whole reply is re-rendered on every token (the browser test prints what a 4 KB
// reply costs); unfinished constructs (an open code fence, half a table or link) render as what
// they are so far, never throw.
// Both libraries are vendored by build.py (EXTRA_VENDOR) into vendor/<pkg>/ and precached.
// Page thread only (DOMPurify needs the window's DOM); docs/ui.md has the whole story.

import MarkdownIt from "../vendor/markdown-it/markdown-it.esm.min.mjs";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";

export const ALLOWED_TAGS = ["p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul",
  "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th", "td",
  "a", "span"];
// rel and target are not in the list: finishLinks sets them, after sanitizing, to fixed values.
// start: a number, on <ol> only (a reply's numbered list often resumes after a code block).
export const ALLOWED_ATTR = ["href", "class", "title", "start"];
export const LINK_REL = "noopener noreferrer nofollow";
export const LINK_TARGET = "_blank";

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
// Checked on the exact string before the URL parser sees it: the parser forgives leading
// whitespace, tabs and newlines inside the scheme, which is how `jav&#x09;ascript:` tricks work.
const SAFE_PREFIX = /^(?:https?:\/\/|mailto:)/i;
const CLASS_RULES = {
  CODE: /^language-[\w.+#-]{1,40}$/,              // fenced code's language (no highlighter)
  TH: /^md-align-(?:left|center|right)$/,         // table alignment, style-free
  TD: /^md-align-(?:left|center|right)$/,
};

/** A value that is not a string (or, for renderInto, not an element) was passed in. */
export class MarkdownInputError extends TypeError {
  constructor(message) {
    super(message);
    this.name = "MarkdownInputError";
  }
}

/** The URL if it is an absolute http(s) URL with a host or a mailto: URL, else null. */
export function safeHref(href) {
  if (typeof href !== "string" || !SAFE_PREFIX.test(href)) return null;
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if (!SAFE_PROTOCOLS.has(url.protocol)) return null;
  if (url.protocol !== "mailto:" && !url.hostname) return null;
  return href;
}

// -- gate 1: markdown-it and the token rewrite ------------------------------------------------
function altText(tokens) {
  return tokens.map((t) => t.type === "image" ? altText(t.children || [])
    : t.type === "softbreak" || t.type === "hardbreak" ? " " : t.content || "").join("");
}

/** An image token as [link_open, text, link_close] to its http(s) URL, or as [text] alone. */
function imageAsLink(image, mayLink, Token) {
  const text = new Token("text", "", 0);
  text.content = `image: ${altText(image.children || [])}`;
  const src = image.attrGet("src");
  if (!mayLink || !/^https?:/i.test(src || "") || safeHref(src) === null) return [text];
  const open = new Token("link_open", "a", 1);
  open.attrs = [["href", src]];
  const title = image.attrGet("title");
  if (title) open.attrs.push(["title", title]);
  return [open, text, new Token("link_close", "a", -1)];
}

/** One inline token stream with unsafe links unwrapped, images turned into links or text and
 * strikethrough written as <del>. */
function safeInline(tokens, Token) {
  const out = [];
  const kept = [];   // per open link: whether its link_open was kept
  let depth = 0;     // kept links currently open (an <a> must not nest in another)
  for (const t of tokens) {
    if (t.type === "link_open") {
      const keep = depth === 0 && safeHref(t.attrGet("href")) !== null;
      kept.push(keep);
      if (keep) {
        depth++;
        out.push(t);
      }
    } else if (t.type === "link_close") {
      if (kept.pop() === true) {
        depth--;
        out.push(t);
      }
    } else if (t.type === "image") {
      out.push(...imageAsLink(t, depth === 0, Token));
    } else if (t.type === "s_open" || t.type === "s_close") {
      t.tag = "del";   // GFM ~~strikethrough~~: markdown-it writes <s>, the allow-list has <del>
      out.push(t);
    } else {
      out.push(t);
    }
  }
  return out;
}

/** markdown-it writes alignment as style="text-align:x"; styles are not allowed, classes are. */
function alignToClass(token) {
  const style = token.attrGet("style");
  if (style === null) return;
  token.attrs = token.attrs.filter(([name]) => name !== "style");
  const m = /^text-align:(left|center|right)$/.exec(style);
  if (m) token.attrJoin("class", `md-align-${m[1]}`);
}

function chatSafety(state) {
  for (const token of state.tokens) {
    if (token.type === "th_open" || token.type === "td_open") alignToClass(token);
    else if (token.type === "inline" && token.children) {
      token.children = safeInline(token.children, state.Token);
    }
  }
}

// "default" preset: CommonMark plus GFM tables and strikethrough. breaks: a single newline is a
// line break, as models write poems, addresses and step lists. linkify: bare URLs with a scheme
// become links (fuzzyLink off: "example.com" alone stays text).
const md = new MarkdownIt("default", { html: false, linkify: true, breaks: true,
  typographer: false, langPrefix: "language-" });
md.linkify.set({ fuzzyLink: false });
// Every destination parses as a link; chatSafety decides which stay links, so a rejected one
// shows its text rather than its Markdown source.
md.validateLink = () => true;
md.core.ruler.push("chat_safety", chatSafety);

// -- gate 2: DOMPurify (its own instance, so its hooks and config touch no other user) --------
const purifier = DOMPurify(window);
purifier.setConfig({
  ALLOWED_TAGS,
  ALLOWED_ATTR,
  ALLOWED_URI_REGEXP: /^(?:https?:\/\/|mailto:)/i,
  // DOMPurify holds every attribute not listed as URI-safe to ALLOWED_URI_REGEXP; start is a
  // number (the hook below checks it), not a URL.
  ADD_URI_SAFE_ATTR: ["start"],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  RETURN_DOM_FRAGMENT: true,
});
purifier.addHook("uponSanitizeAttribute", (node, data) => {
  if (data.attrName === "class") {
    const rule = CLASS_RULES[node.nodeName];
    if (!rule || !rule.test(data.attrValue)) data.keepAttr = false;
  } else if (data.attrName === "start") {
    if (node.nodeName !== "OL" || !/^\d{1,9}$/.test(data.attrValue)) data.keepAttr = false;
  }
});

// -- gate 3: links ----------------------------------------------------------------------------
function finishLinks(fragment) {
  for (const a of fragment.querySelectorAll("a")) {
    if (safeHref(a.getAttribute("href")) === null) {
      a.replaceWith(...a.childNodes);
    } else {
      a.setAttribute("rel", LINK_REL);
      a.setAttribute("target", LINK_TARGET);
    }
  }
}

/** Markdown text -> a sanitized DocumentFragment (see the top of this file for the rules). */
export function renderMarkdown(text) {
  if (typeof text !== "string") {
    throw new MarkdownInputError(`renderMarkdown expects a string, got ${text === null ? "null"
      : typeof text}`);
  }
  const fragment = purifier.sanitize(md.render(text));
  finishLinks(fragment);
  return fragment;
}

/** Replace element's children with the rendered text (call it again on every streamed token). */
export function renderInto(element, text) {
  if (!element || typeof element.replaceChildren !== "function") {
    throw new MarkdownInputError("renderInto expects a DOM element to render into");
  }
  element.replaceChildren(renderMarkdown(text));
}
