// Why: kube-sim gzips large responses as kube-apiserver does; zlib is a system library
// (Debian's zlib1g-dev, which libcurl4-openssl-dev already needs), reached through pkg-config `zlib`.
#include <zlib.h>
