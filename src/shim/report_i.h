/* report_i.h - the status file and the Prometheus textfile of a running process (report.c). */
#ifndef BUFSHIM_REPORT_I_H
#define BUFSHIM_REPORT_I_H

/*
 * Errno: both keep errno.
 *
 * The status file: <spool folder>/<pid>-<starttime>.status, mode 0644 in a folder of mode
 * 0700. Line 1 "bufshim-status 1", line 2 "metrics DIR" (DIR empty without
 * BUFSHIM_METRICS), line 3 one JSON object: pid, starttime, updated (Unix time), interval,
 * metrics, targets (path, mode, held, oldest, oldest_held_seconds, batches, written,
 * last_batch, in_flight_since, failure, failure_episodes, batch_seconds). With
 * BUFSHIM_METRICS=DIR, DIR/<pid>.prom holds the same figures in the Prometheus text
 * format. Both are removed by the final flush; a dead process's are marked (bufshim_up 0)
 * and removed by the keeper or `bufshim status`.
 */

/* Has the writer threads write both files, at most once per interval (at least 250 ms
 * apart). Called once by the constructor of an active shim. */
void bs_report_init(void);

/* The final flush: no more reports; the files are removed. */
void bs_report_final(void);

#endif /* BUFSHIM_REPORT_I_H */
