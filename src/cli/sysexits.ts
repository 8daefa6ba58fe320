// Exit codes from sysexits.h: what cron, systemd and init scripts expect.

export const EX_OK = 0;
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOINPUT = 66;
export const EX_NOUSER = 67;
export const EX_UNAVAILABLE = 69;
export const EX_SOFTWARE = 70;
export const EX_OSERR = 71;
export const EX_CANTCREAT = 73;
export const EX_IOERR = 74;
export const EX_TEMPFAIL = 75;
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;

/** An error that ends the program with one line on stderr and this exit code. */
export class Fatal extends Error {
  override name = 'Fatal';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
