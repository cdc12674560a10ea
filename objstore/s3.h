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
	const char *ca_bundle;	   /* PEM file of the CA certificates to
				      trust instead of the system's, or
				      NULL (ignored when insecure) */
	unsigned max_connections;  /* 0 = 16 */
	unsigned retries;	   /* attempts after the first; 0 = 4 */
	uint64_t multipart_threshold; /* bytes; 0 = 64 MiB */
	uint64_t part_size;	      /* bytes; 0 = 16 MiB */
};

/* An S3 backend for `cfg` (strings copied).  No request is made here.
 * Returns 0, -EINVAL (bad endpoint, no bucket or credentials) or
 * -ENOMEM. */
int ost_s3_new(const struct ost_s3_config *cfg, struct ost_backend **out);

/* S3 settings given as mount options; NULL (or -1) = not given. */
struct ost_s3_opts {
	const char *endpoint;	 /* http[s]://host[:port] or host[:port] */
	const char *region;
	const char *addressing;	 /* "path", "virtual" or "auto" */
	const char *passwd_file; /* ACCESS:SECRET or BUCKET:ACCESS:SECRET */
	const char *profile;	 /* of ~/.aws/credentials and ~/.aws/config */
	int signed_payloads;	 /* -1, 0 or 1 */
	bool insecure;
	const char *ca_bundle;	 /* PEM CA certificates (AWS_CA_BUNDLE) */
	uint64_t multipart_threshold; /* bytes; 0 = the default */
	uint64_t part_size;	      /* bytes; 0 = the default, else >= 5 MiB */
	unsigned retries;	      /* attempts after the first; 0 = default */
};

/* Settings resolved for one mount; cfg's strings point into the arrays
 * (wipe the struct after use: it holds the secret). */
struct ost_s3_resolved {
	struct ost_s3_config cfg;
	char bucket[64], prefix[OST_KEY_MAX + 1], endpoint[512], region[64];
	char access[256], secret[256], token[4096];
	char ca_bundle[4096]; /* absolute path, or "" */
};

/* True if `source` names an S3 bucket (s3://..., BUCKET, BUCKET:/PREFIX),
 * not a local directory, mem:// or an Azure container. */
bool ost_s3_source(const char *source);

/* Resolve the settings of an S3 mount of `source` (s3://BUCKET/PREFIX,
 * BUCKET:/PREFIX or BUCKET; an empty bucket is taken from $BUCKET_NAME).
 * Each setting comes from the first of: the mount options `o` (may be
 * NULL), the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN, AWS_REGION, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3,
 * AWS_ENDPOINT_URL, AWS_USE_TLS, AWS_S3_ADDRESSING_STYLE,
 * AWS_SIGNED_PAYLOADS, AWS_CA_BUNDLE, AWS_PROFILE,
 * AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE), the profile of
 * ~/.aws/credentials and ~/.aws/config (keys as the AWS CLI's: region,
 * endpoint_url, ca_bundle, s3 = addressing_style...); else the defaults
 * (us-east-1, AWS's endpoint, virtual-hosted on AWS and path-style
 * elsewhere, UNSIGNED-PAYLOAD bodies, the system's CA certificates).
 * An endpoint without a scheme (HOST[:PORT]) gets https://, or http://
 * when AWS_USE_TLS is false; an endpoint whose scheme contradicts a set
 * AWS_USE_TLS is refused.  A passwd_file that group or others may read is
 * refused; a ca_bundle must be a readable file (made absolute: the daemon
 * changes to / when it detaches).  Returns 0, -EINVAL, -EACCES or
 * -ENOENT, after logging why. */
int ost_s3_resolve(const char *source, const struct ost_s3_opts *o,
		   struct ost_s3_resolved *r);

#endif
