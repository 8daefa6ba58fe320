// The progress bar on a terminal that a long run draws (an export of a full
// spool, a first IMAP sync), shared so both look and behave alike.

/** Below this many items a progress bar is noise. */
const PROGRESS_FROM = 100;

/** A bar on stream, redrawn at most ten times a second; label goes before it. */
export function progressBar(stream: NodeJS.WriteStream, label = ''): (done: number, total: number) => void {
  let last = 0;
  let drawn = false;
  return (done, total) => {
    // Once drawn, the bar is finished even when the total turned out smaller.
    if (total < PROGRESS_FROM && !drawn) return;
    drawn = true;
    const now = Date.now();
    if (done < total && now - last < 100) return;
    last = now;
    const width = 30;
    const filled = Math.round((done / total) * width);
    stream.write(`\r${label}[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total}`);
    if (done === total) stream.write('\n');
  };
}

/** One bar per folder, on stderr, labelled with the folder's name (an IMAP import on a terminal). */
export function folderBars(): (folder: string, done: number, total: number) => void {
  let current = '';
  let bar = progressBar(process.stderr);
  return (folder, done, total) => {
    if (folder !== current) {
      current = folder;
      bar = progressBar(process.stderr, `${folder} `);
    }
    bar(done, total);
  };
}
