/*
 * hexfields.h - the line format of the signer tools (sigv4_tool.c,
 * azsign_tool.c): strings as hex-encoded bytes, "-" for an empty one.
 * Header-only, for those test programs only.
 */
#ifndef CH5_HEXFIELDS_H
#define CH5_HEXFIELDS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEXFIELDS_MAX 512 /* fields in one line */

/* Every string of the current line, freed by hexfields_free(). */
static char *hexfields_owned[2 * HEXFIELDS_MAX + 16];
static size_t hexfields_n;

/* The bytes `s` encodes, NUL-terminated (owned until hexfields_free()).
 * Exits with status 2 on memory exhaustion or a field that is not hex. */
static char *unhex(const char *s)
{
	size_t n = strlen(s), i;
	char *out = malloc(n / 2 + 1);

	if (!out)
		exit(2);
	if (!strcmp(s, "-"))
		n = 0;
	for (i = 0; i + 1 < n; i += 2) {
		unsigned v;

		if (sscanf(s + i, "%2x", &v) != 1)
			exit(2);
		out[i / 2] = (char)v;
	}
	out[n / 2] = '\0';
	if (hexfields_n < sizeof(hexfields_owned) / sizeof(hexfields_owned[0]))
		hexfields_owned[hexfields_n++] = out;
	return out;
}

/* Free every string unhex() returned since the last call. */
static void hexfields_free(void)
{
	while (hexfields_n)
		free(hexfields_owned[--hexfields_n]);
}

#endif
