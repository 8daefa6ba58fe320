// Exporting as files arrive (benno-export2archive --watch): an export run
// whenever a new file waits, at the latest when a quiet minute has passed,
// and a growing pause after runs the archive host did not let through.

import * as fs from 'node:fs';
import { Logger } from '../ops/log';
import { SpoolReader } from '../spool/reader';
import type { ExportSummary } from './exporter';

export interface WatchTiming {
  /** The longest wait for new files; files left behind by the last run are tried again after it. */
  idleMs: number;
  /** The wait after the first run that should be retried later, doubled after each further one. */
  firstPauseMs: number;
  maxPauseMs: number;
}

export const WATCH_TIMING: WatchTiming = { idleMs: 60_000, firstPauseMs: 30_000, maxPauseMs: 300_000 };

export interface WatchOptions {
  spoolDir: string;
  suffix: string;
  log: Logger;
  /** One export run over spoolDir, with what the program does around it (its log lines, the status file). */
  run: () => Promise<ExportSummary>;
  timing?: WatchTiming;
}

/**
 * Whether the next run should wait a while: the archive host refuses us,
 * something was deferred (the host may be down or busy), or the run failed
 * (null). Files the host refused one by one are no reason: the host is fine.
 */
export function retryLater(summary: ExportSummary | null): boolean {
  return summary === null || summary.serverRefused || summary.deferred > 0;
}

/** The pause before the next run, given the last one: none after a run that went through. */
export function nextPause(lastMs: number, summary: ExportSummary | null, timing: WatchTiming = WATCH_TIMING): number {
  if (!retryLater(summary)) return 0;
  return Math.min(lastMs ? lastMs * 2 : timing.firstPauseMs, timing.maxPauseMs);
}

/**
 * Watches the spool directory for files arriving (the milter renames each
 * one into place: one inotify event). The watch stays open across export
 * runs, so a file that arrives during a run triggers the next one.
 */
class SpoolWatch {
  private dirty = true;
  private wake?: () => void;
  private readonly watcher: fs.FSWatcher;
  stopped = false;

  constructor(dir: string) {
    this.watcher = fs.watch(dir, () => {
      this.dirty = true;
      // A moment for the files arriving with it.
      setTimeout(() => this.wake?.(), 200);
    });
  }

  /**
   * Resolves when files may have arrived since the last call (true), at the
   * deadline (false), or on stop.
   */
  next(deadline: number): Promise<boolean> {
    if (this.dirty || this.stopped) {
      this.dirty = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const self = this;
      const timer = setTimeout(() => done(false), Math.max(0, deadline - Date.now()));
      function done(woken: boolean) {
        clearTimeout(timer);
        self.wake = undefined;
        self.dirty = false;
        resolve(woken);
      }
      this.wake = () => done(true);
    });
  }

  stop(): void {
    this.stopped = true;
    this.watcher.close();
    this.wake?.();
  }
}

/** Watches from construction (the first run starts at once) until stop(). */
export class ExportWatcher {
  private readonly watch: SpoolWatch;
  private readonly timing: WatchTiming;
  private readonly done: Promise<void>;

  constructor(private readonly options: WatchOptions) {
    this.timing = options.timing ?? WATCH_TIMING;
    this.watch = new SpoolWatch(options.spoolDir);
    this.done = this.loop();
  }

  /** Stops waiting; a run under way is finished first. */
  async stop(): Promise<void> {
    this.watch.stop();
    await this.done;
  }

  private async loop(): Promise<void> {
    let pause = 0;
    let leftBehind = new Set<string>();
    while (await this.waitForWork(leftBehind, Date.now() + (pause || this.timing.idleMs))) {
      const summary = await this.runOnce();
      leftBehind = this.stillWaiting(summary?.handled ?? []);
      pause = nextPause(pause, summary, this.timing);
    }
  }

  /** Until a file waits that the last run did not leave behind, or the deadline; false once stopped. */
  private async waitForWork(leftBehind: Set<string>, deadline: number): Promise<boolean> {
    let woken = await this.watch.next(deadline);
    while (woken && !this.watch.stopped && !this.somethingNew(leftBehind)) woken = await this.watch.next(deadline);
    return !this.watch.stopped;
  }

  /** The run's summary; null when it failed, which is logged and tried again after a pause. */
  private runOnce(): Promise<ExportSummary | null> {
    return this.options.run().catch((err: Error) => {
      this.options.log.error(`export failed: ${err.message}`);
      return null;
    });
  }

  /**
   * The exporter's own renames (claiming a file, putting back one it could
   * not send) wake the watch as a new file would. A wake-up counts only when
   * a file waits that the last run did not leave behind; otherwise a file the
   * archive host keeps refusing would be retried, and logged, as fast as the
   * disk allows. Files left behind are tried again when the wait runs out.
   */
  private somethingNew(leftBehind: Set<string>): boolean {
    const names = this.waitingNames();
    return names === null || names.some((name) => !leftBehind.has(name));
  }

  private stillWaiting(handled: string[]): Set<string> {
    const waiting = new Set(this.waitingNames() ?? []);
    return new Set(handled.filter((name) => waiting.has(name)));
  }

  /** null when the directory cannot be read. */
  private waitingNames(): string[] | null {
    try {
      return new SpoolReader(this.options.spoolDir, this.options.suffix).list().map((e) => e.name);
    } catch {
      return null;
    }
  }
}
