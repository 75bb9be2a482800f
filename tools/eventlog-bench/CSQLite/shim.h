// Why: the benchmark compares Capstan's log with SQLite (WAL, synchronous=FULL) in one run.
// Only tools/eventlog-bench imports it. SQLITE_TRANSIENT is a function-like cast macro that
// Swift cannot import, so it is mirrored here.
#include <sqlite3.h>
static inline sqlite3_destructor_type capstan_sqlite_transient(void) { return SQLITE_TRANSIENT; }
