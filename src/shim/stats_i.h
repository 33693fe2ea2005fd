/* stats_i.h - the BUFSHIM_STATS report (stats.c), called by the shim's lifecycle. */
#ifndef BUFSHIM_STATS_I_H
#define BUFSHIM_STATS_I_H

#include "bufshim.h"

/* Errno: both functions keep errno. */

/*
 * Writes one report on every engine writer (one per target): to fd 2 as a short
 * human table when dest is "stderr", otherwise appended to the file dest as one
 * JSON object a line. Runs at exit and in a terminating signal's handler, so it
 * writes with raw system calls only (never a stdio stream or the shim's own
 * wrappers), formats with snprintf into its own buffer (stats.c says why that is
 * safe there), allocates nothing, and leaves errno as it was.
 * A dest that cannot be opened gives one line on stderr.
 */
void bs_stats_report(const char *dest);

/*
 * Keeps w's counters for the report before the shim closes w ahead of exit (a
 * target nobody refers to any more whose bytes are all written). Counters of
 * writers retired under one name add up, and add to a live writer of that name,
 * so a file opened and closed once per record still shows as one target. Call it
 * only when BUFSHIM_STATS is set: it allocates. Thread-safe, errno preserved.
 */
void bs_stats_retire(bufshim_writer *w);

#endif /* BUFSHIM_STATS_I_H */
