// Why: CRC-32C (Castagnoli) is the checksum of every envelope of the event log, so it runs
// over every byte a replay reads; the SSE4.2 CRC32 instruction does it at several bytes per
// cycle, far ahead of any table. A tiny C target because Swift cannot name the intrinsic;
// only EventLog imports it.
#ifndef CAPSTAN_CRC32C_H
#define CAPSTAN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has the CRC32 instruction (x86-64 SSE4.2), else 0.
int capstan_crc32c_hardware(void);

/// Continues a raw CRC-32C state over `length` bytes (no pre- or post-inversion: the caller
/// inverts, as the software version does). Only call when capstan_crc32c_hardware() is 1.
uint32_t capstan_crc32c_update(uint32_t state, const void *data, size_t length);

#endif
