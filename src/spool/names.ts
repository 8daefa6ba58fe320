// The names in a spool directory, the one place that knows them. Every
// program that writes, sends or reports on a spool asks here.
//
//   <sha256><suffix>                    a spool file, waiting (writer.ts commits it)
//   .<host>.<pid>.<seq>.tmp             being written by the milter or benno-smtp
//   .<name>.<host>.<pid>.sending        claimed by one exporter (reader.ts)
//   <name>.err                          not a spool file, set aside by the exporter
//   .benno-export-status.json           the last export's result (status.ts)
//
// Whatever is not ours starts with a dot or ends in .err, so Benno's inbox
// import, which takes *<suffix>, never sees a half-written or claimed file.

/** Where the milter writes and benno-smtp stores by default: Benno's inbox. */
export const DEFAULT_SPOOL_DIR = '/srv/benno/inbox';

/** Suffix of final names by default: what Benno's inbox imports. */
export const DEFAULT_SUFFIX = '.eml';

/** A file the exporter set aside because it is not a spool file (as Benno marks failures). */
export const FAILED_SUFFIX = '.err';

/** The exporter's last result, a dot file neither Benno nor the exporter picks up. */
export const EXPORT_STATUS_FILE = '.benno-export-status.json';

const TEMP_SUFFIX = '.tmp';
const CLAIM_SUFFIX = '.sending';
const TEMP_RE = /^\.(.+)\.(\d+)\.(\d+)\.tmp$/;
const CLAIM_RE = /^\.(.+)\.([A-Za-z0-9_-]+)\.(\d+)\.sending$/;

/** Why a suffix cannot be used for final names, or null when it can. */
export function suffixProblem(suffix: string): string | null {
  if (!/^[A-Za-z0-9._-]*$/.test(suffix)) return `"${suffix}": letters, digits, '.', '_' and '-' only`;
  // A final name with one of these endings would be taken for a file in another state.
  for (const reserved of [TEMP_SUFFIX, CLAIM_SUFFIX, FAILED_SUFFIX]) {
    if (suffix.endsWith(reserved)) return `"${suffix}": names ending in ${reserved} are reserved for ${RESERVED_FOR[reserved]}`;
  }
  return null;
}

const RESERVED_FOR: Record<string, string> = {
  [TEMP_SUFFIX]: 'files being written',
  [CLAIM_SUFFIX]: 'files being sent',
  [FAILED_SUFFIX]: 'files set aside by the exporter',
};

/** The final name of a file whose content has this SHA-256 (hex). */
export function finalName(sha256Hex: string, suffix: string): string {
  return sha256Hex + suffix;
}

/** A file waiting to be sent or imported: a final name with this suffix. */
export function isWaitingName(name: string, suffix: string): boolean {
  return !isDotName(name) && name.endsWith(suffix) && !name.endsWith(FAILED_SUFFIX);
}

/** A file the exporter set aside. */
export function isFailedName(name: string): boolean {
  return !isDotName(name) && name.endsWith(FAILED_SUFFIX);
}

/** The name a file is set aside under. */
export function failedName(name: string): string {
  return name + FAILED_SUFFIX;
}

/** Host and pid of the process a temp or claim file belongs to. */
export interface Owner {
  host: string;
  pid: number;
}

export function tempName(owner: Owner, seq: number): string {
  return `.${owner.host}.${owner.pid}.${seq}${TEMP_SUFFIX}`;
}

/** The owner of a temp file, or null when the name is no temp name. */
export function tempOwner(name: string): Owner | null {
  const m = TEMP_RE.exec(name);
  return m ? { host: m[1], pid: Number(m[2]) } : null;
}

export function claimName(name: string, owner: Owner): string {
  return `.${name}.${owner.host}.${owner.pid}${CLAIM_SUFFIX}`;
}

/** The claimed file's own name and its claimer, or null when the name is no claim name. */
export function parseClaimName(name: string): (Owner & { name: string }) | null {
  const m = CLAIM_RE.exec(name);
  return m ? { name: m[1], host: m[2], pid: Number(m[3]) } : null;
}

/** The name under which the status file is written before it is renamed into place. */
export function statusTempName(pid: number): string {
  return `${EXPORT_STATUS_FILE}.${pid}`;
}

/** A dot name: a temp file, a claim or the status file, never a spool file of its own. */
export function isDotName(name: string): boolean {
  return name.startsWith('.');
}
