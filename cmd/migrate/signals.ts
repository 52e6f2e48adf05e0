// SIGINT/SIGTERM for the commands that work for a while (up, down, redo, a
// rehearsal, verify, verify --data): the first stops the work where it can
// stop cleanly, a second exits at once.

/** 128 + the signal's number, as a shell reports a process it stopped. */
export function signalExitCode(signal: NodeJS.Signals | string): number {
  return 128 + (signal === "SIGINT" ? 2 : 15);
}

/**
 * Runs `fn` with a signal that SIGINT or SIGTERM aborts (its reason is the
 * signal's name); `onFirst` may say what the stop will do. The handlers are
 * removed when `fn` settles.
 */
export async function untilSignalled<T>(
  fn: (signal: AbortSignal) => Promise<T>,
  onFirst?: (signal: NodeJS.Signals) => void,
): Promise<T> {
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) process.exit(signalExitCode(signal));
    onFirst?.(signal);
    stop.abort(signal);
  };
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  try {
    return await fn(stop.signal);
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
  }
}
