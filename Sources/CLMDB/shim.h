// Why: liblmdb is a system library (Debian's liblmdb-dev); SwiftPM reaches it through this
// header and pkg-config `lmdb`. lmdb.h has no variadic functions, so no wrappers are needed.
#include <lmdb.h>
