// The life of a long-running program, shared by the milter and the SMTP
// receiver: pid file, readiness and stop notifications to systemd, SIGTERM /
// SIGINT handling with a bounded drain, and one clear line for fatal errors.

import { Logger } from '../ops/log';
import { sdNotify } from '../ops/notify';
import { removePidFile, writePidFile } from '../ops/pidfile';
import { EX_CANTCREAT, EX_OK, EX_SOFTWARE, Fatal } from './sysexits';

export interface Service {
  /** Starts serving; resolves once connections are accepted. Returns a description for the log. */
  start(): Promise<string>;
  /** Stops accepting, drains, closes. */
  stop(): Promise<void>;
}

export interface DaemonOptions {
  program: string;
  log: Logger;
  pidFile?: string;
}

export async function runDaemon(service: Service, options: DaemonOptions): Promise<void> {
  const { log, pidFile } = options;
  let stopping = false;

  const stop = async (why: string) => {
    if (stopping) {
      log.warn(`${why} again: exiting without waiting for connections to finish`);
      process.exit(EX_OK);
    }
    stopping = true;
    log.info(`${why}: stopping`);
    sdNotify('STOPPING=1').catch((err: Error) => log.warn(err.message));
    try {
      await service.stop();
    } catch (err) {
      log.error(`error while stopping: ${(err as Error).message}`);
    }
    if (pidFile) removePidFile(pidFile);
    log.info('stopped');
    process.exit(EX_OK);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => log.info('SIGHUP: nothing to reload; restart the service to apply new options'));
  process.on('uncaughtException', (err) => {
    // Nothing unacknowledged is lost by dying: the MTA keeps what we did not accept.
    log.error(`internal error, exiting: ${err.stack ?? err.message}`);
    if (pidFile) removePidFile(pidFile);
    process.exit(EX_SOFTWARE);
  });

  if (pidFile) {
    try {
      writePidFile(pidFile);
    } catch (err) {
      throw new Fatal(`cannot write pid file: ${(err as Error).message}`, EX_CANTCREAT);
    }
  }
  let description: string;
  try {
    description = await service.start();
  } catch (err) {
    if (pidFile) removePidFile(pidFile);
    throw err;
  }
  log.info(`started: ${description}`);
  await sdNotify('READY=1', `STATUS=${description}`).catch((err: Error) => log.warn(err.message));
}
