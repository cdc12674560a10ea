/*
 * s3.h - the S3 backend: AWS S3 and S3-compatible stores (Ceph RGW, MinIO,
 * Garage) over HTTP(S), requests signed with AWS SigV4 (sigv4.h), sent by
 * the libcurl multi engine (http.h).
 *
 * Keys of the store are object keys below an optional key prefix of one
 * bucket.  Operations (ost.h contract):
 *   get   ranged GET (Range: bytes=a-b); 416 past the end reads 0 bytes
 *   put   PUT, If-None-Match: * / If-Match: ETag for conditions; bodies
 *         above multipart_threshold without a condition go up as a
 *         multipart upload (aborted on failure)
 *   head  HEAD
 *   list  ListObjectsV2 (prefix, delimiter, continuation token,
 *         encoding-type=url)
 *   del   DELETE (a missing key succeeds)
 *   copy  PUT with x-amz-copy-source
 * Connection errors, 5xx, 429 and SlowDown are retried with exponential
 * backoff and jitter; other 4xx are not.  HTTP answers become errnos in
 * one place (s3_errno in s3.c) and the S3 error code and message are
 * logged, never credentials or signatures.
 */
#ifndef CH5_OST_S3_H
#define CH5_OST_S3_H

#include <stdbool.h>
#include <stdint.h>

#include "ost.h"

struct ost_s3_config {
	const char *endpoint;	   /* "http://127.0.0.1:7480", or NULL for
				      https://s3.<region>.amazonaws.com */
	const char *region;	   /* NULL = "us-east-1" */
	const char *bucket;
	const char *prefix;	   /* key prefix, "" or ending in '/' */
	bool virtual_host;	   /* bucket.host addressing (else path) */
	const char *access_key;
	const char *secret_key;
	const char *session_token; /* NULL when none */
	bool signed_payloads;	   /* SHA-256 of PUT bodies, not UNSIGNED */
	bool insecure;		   /* no TLS certificate verification */
	unsigned max_connections;  /* 0 = 16 */
	unsigned retries;	   /* attempts after the first; 0 = 4 */
	uint64_t multipart_threshold; /* bytes; 0 = 64 MiB */
	uint64_t part_size;	      /* bytes; 0 = 16 MiB */
};

/* An S3 backend for `cfg` (strings copied).  No request is made here.
 * Returns 0, -EINVAL (bad endpoint, no bucket or credentials) or
 * -ENOMEM. */
int ost_s3_new(const struct ost_s3_config *cfg, struct ost_backend **out);

/* Fill *cfg from an "s3://bucket/prefix" URL and the environment
 * (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION,
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
 * AWS_S3_ADDRESSING_STYLE=path|virtual, AWS_SIGNED_PAYLOADS, AWS_USE_TLS).
 * Strings point into `buf` (size bytes) or the environment.  Returns 0 or
 * -EINVAL (message logged). */
int ost_s3_config_env(const char *url, struct ost_s3_config *cfg, char *buf,
		      size_t size);

#endif
