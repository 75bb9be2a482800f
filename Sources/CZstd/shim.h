// Why: libzstd is a system library (Debian's libzstd-dev), reached through pkg-config `libzstd`.
// zdict.h brings dictionary training (ZDICT_trainFromBuffer), used to train per-type dictionaries.
#include <zstd.h>
#include <zdict.h>
