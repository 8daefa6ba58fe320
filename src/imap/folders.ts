// Which of an account's folders are archived, and the name each one is
// stored under. Pure functions over what LIST said, so that --list-folders
// and the sync decide alike.

/** One LIST entry, as much of it as the decision needs. */
export interface ListedFolder {
  /** The name decoded to Unicode (imapflow's path): what commands take and logs show. */
  path: string;
  /** The hierarchy separator, or '' for a flat namespace. */
  delimiter: string;
  /** The server's attributes: \Noselect, \HasChildren, and SPECIAL-USE ones such as \Trash. */
  flags: ReadonlySet<string>;
}

export interface FolderChoice {
  path: string;
  /** The state key: the name in modified UTF-7, as a server without UTF8=ACCEPT sends it. */
  key: string;
  delimiter: string;
  /** Why the folder is not archived, or null when it is. */
  excluded: string | null;
}

/** SPECIAL-USE attributes an exclude entry of the same name also matches (RFC 6154). */
const SPECIAL_USE = ['\\Drafts', '\\Trash', '\\Junk'];

/**
 * The personal namespace's prefix ("" on Dovecot, "INBOX." on Cyrus): an
 * exclude entry names a folder relative to it, as the user sees it, so that
 * "Trash" means INBOX.Trash on Cyrus.
 */
export function chooseFolders(listed: readonly ListedFolder[], exclude: readonly string[], personalPrefix = ''): FolderChoice[] {
  const specialUse = new Map<string, string>();
  for (const e of exclude) {
    const flag = SPECIAL_USE.find((f) => f.slice(1).toLowerCase() === e.toLowerCase());
    if (flag) specialUse.set(flag.toLowerCase(), e);
  }
  return listed.map((f) => ({ path: f.path, key: toModifiedUtf7(f.path), delimiter: f.delimiter, excluded: whyExcluded(f, exclude, specialUse, personalPrefix) }));
}

function whyExcluded(f: ListedFolder, exclude: readonly string[], specialUse: Map<string, string>, prefix: string): string | null {
  const flags = [...f.flags].map((x) => x.toLowerCase());
  if (flags.includes('\\noselect') || flags.includes('\\nonexistent')) return 'not selectable (\\Noselect)';
  for (const flag of flags) {
    const entry = specialUse.get(flag);
    if (entry !== undefined) return `special-use ${SPECIAL_USE.find((s) => s.toLowerCase() === flag)} matches exclude "${entry}"`;
  }
  const isInbox = f.path.toUpperCase() === 'INBOX';
  if (!isInbox && prefix !== '' && !f.path.startsWith(prefix)) return `outside the personal namespace "${prefix}"`;
  // As the user sees it (without the namespace prefix), and in full.
  const forms = [splitPath(isInbox ? f.path : f.path.slice(prefix.length), f.delimiter), splitPath(f.path, f.delimiter)];
  for (const e of exclude) {
    // An entry may be written with either separator, whatever the server uses.
    for (const sep of new Set([f.delimiter, '/'])) {
      const wanted = splitPath(e, sep);
      const form = wanted.length > 0 && forms.find((segments) => startsWith(segments, wanted));
      if (form) return wanted.length === form.length ? `excluded by name "${e}"` : `inside excluded folder "${e}"`;
    }
  }
  return null;
}

function splitPath(p: string, delimiter: string): string[] {
  return (delimiter ? p.split(delimiter) : [p]).filter((s) => s !== '');
}

/** Segment-wise prefix; IMAP names are case-sensitive except INBOX (RFC 3501 5.1). */
function startsWith(path: string[], wanted: string[]): boolean {
  if (wanted.length > path.length) return false;
  return wanted.every((w, i) => w === path[i] || (i === 0 && w.toUpperCase() === 'INBOX' && path[i].toUpperCase() === 'INBOX'));
}

/**
 * RFC 3501 5.1.3 modified UTF-7. The state key takes this form whether or
 * not the session enabled UTF8=ACCEPT, so a server upgrade that starts
 * offering it does not make every folder look new.
 */
export function toModifiedUtf7(name: string): string {
  let out = '';
  let pending: number[] = [];
  const flush = () => {
    if (pending.length === 0) return;
    const bytes = Buffer.alloc(pending.length * 2);
    pending.forEach((u, i) => bytes.writeUInt16BE(u, i * 2));
    out += '&' + bytes.toString('base64').replace(/=+$/, '').replace(/\//g, ',') + '-';
    pending = [];
  };
  for (let i = 0; i < name.length; i++) {
    const u = name.charCodeAt(i);
    if (u >= 0x20 && u <= 0x7e) {
      flush();
      out += u === 0x26 ? '&-' : name[i];
    } else {
      pending.push(u);
    }
  }
  flush();
  return out;
}
