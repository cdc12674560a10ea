/*
 * ost_list_tool.c - list a store page by page with ost_list(), for tests
 * that compare the pages a backend makes with the store's contents
 * (tests/integration/test_az_protocol.py).
 *
 * usage: ost_list_tool SOURCE PREFIX DELIMITER MAX_KEYS
 *   SOURCE as for mount.cloudh5 (settings from the environment); an empty
 *   DELIMITER is none.  Prints one line per item in page order: "o KEY" for
 *   an object, "p PREFIX" for a common prefix, and "page N" after each
 *   page of N items.  Exit status 0, or 1 with a message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ost.h"

int main(int argc, char **argv)
{
	struct ost *st = NULL;
	char *token = NULL;
	int rc;

	if (argc != 5) {
		fprintf(stderr, "usage: ost_list_tool SOURCE PREFIX DELIMITER "
				"MAX_KEYS\n");
		return 1;
	}
	rc = ost_open_url(argv[1], NULL, 4, &st);
	if (rc < 0) {
		fprintf(stderr, "ost_list_tool: %s: %s\n", argv[1],
			strerror(-rc));
		return 1;
	}
	do {
		struct ost_list_result res = { 0 };
		size_t io = 0, ip = 0;

		rc = ost_list(st, argv[2], argv[3], token,
			      strtoul(argv[4], NULL, 10), &res);
		free(token);
		token = NULL;
		if (rc < 0) {
			fprintf(stderr, "ost_list_tool: LIST: %s\n",
				strerror(-rc));
			break;
		}
		while (io < res.n_objects || ip < res.n_prefixes) {
			if (ip == res.n_prefixes ||
			    (io < res.n_objects &&
			     strcmp(res.objects[io].key, res.prefixes[ip]) < 0))
				printf("o %s\n", res.objects[io++].key);
			else
				printf("p %s\n", res.prefixes[ip++]);
		}
		printf("page %zu\n", res.n_objects + res.n_prefixes);
		if (res.next_token)
			token = strdup(res.next_token);
		ost_list_result_release(&res);
	} while (token);
	ost_free(st);
	return rc < 0;
}
