/*
 * bytes.h - little-endian integers in byte buffers, for the formats cloudh5
 * stores (the manifest, the directory index).
 *
 * Thread-safety: each function touches only its arguments.
 */
#ifndef CH5_BYTES_H
#define CH5_BYTES_H

#include <stdint.h>

/* Store `v` at p[0..3] (p[0] least significant). */
static inline void ch5_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Store `v` at p[0..7] (p[0] least significant). */
static inline void ch5_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The value stored at p[0..3] by ch5_put_le32(). */
static inline uint32_t ch5_get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The value stored at p[0..7] by ch5_put_le64(). */
static inline uint64_t ch5_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#endif
