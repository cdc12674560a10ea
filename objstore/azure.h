/*
 * azure.h - the Azure Blob Storage backend: block blobs of one container
 * over HTTP(S), requests authorized with Shared Key (azsign.h) or a SAS
 * token, sent by the libcurl multi engine (http.h).  Follows the Azure
 * Storage REST API, services version 2021-08-06.
 *
 * Keys of the store are blob names below an optional prefix of one
 * container.  Operations (ost.h contract):
 *   get   Get Blob with x-ms-range; 416 past the end reads 0 bytes
 *   put   Put Blob (If-None-Match: * / If-Match: ETag for conditions);
 *         bodies above block_threshold go up as Put Block + Put Block
 *         List, the condition on the list (uncommitted blocks of a failed
 *         upload are dropped by the service after a week)
 *   head  Get Blob Properties
 *   list  List Blobs (prefix, delimiter, marker paging)
 *   del   Delete Blob (a missing blob succeeds)
 *   copy  Copy Blob, waiting while its x-ms-copy-status is pending
 * Connection errors, 5xx and 429 are retried with exponential backoff and
 * jitter; other 4xx are not.  HTTP answers become errnos in one place
 * (az_errno in azure.c); the Azure error code and message are logged,
 * never the key, a SAS signature or a Shared Key signature.
 */
#ifndef CH5_OST_AZURE_H
#define CH5_OST_AZURE_H

#include <stdbool.h>
#include <stdint.h>

#include "ost.h"

struct ost_az_config {
	const char *endpoint;  /* blob service URL, e.g.
				  "https://acct.blob.core.windows.net" or
				  "http://127.0.0.1:10000/devstoreaccount1"
				  (Azurite: the account in the path) */
	const char *account;   /* storage account name */
	const char *container;
	const char *prefix;    /* blob name prefix, "" or ending in '/' */
	const char *key;       /* Base64 account key (Shared Key), or NULL */
	const char *sas;       /* SAS token without '?', or NULL; used when
				  there is no key */
	bool insecure;	       /* no TLS certificate verification */
	const char *ca_bundle; /* PEM CA certificates, or NULL */
	unsigned max_connections;    /* 0 = 16 */
	unsigned retries;	     /* attempts after the first; 0 = 4 */
	uint64_t block_threshold;    /* bytes; 0 = 64 MiB */
	uint64_t block_size;	     /* bytes; 0 = 16 MiB */
};

/* An Azure backend for `cfg` (strings copied).  No request is made here.
 * Returns 0, -EINVAL (bad endpoint or key, no container, account or
 * credentials; logged) or -ENOMEM. */
int ost_az_new(const struct ost_az_config *cfg, struct ost_backend **out);

/* Azure settings given as mount options; NULL = not given. */
struct ost_az_opts {
	const char *account;
	const char *endpoint;	 /* blob service URL */
	const char *passwd_file; /* ACCOUNT:KEY or CONTAINER:ACCOUNT:KEY */
	const char *sas;	 /* SAS token */
	bool insecure;
	const char *ca_bundle;
	uint64_t block_threshold; /* bytes; 0 = the default */
	uint64_t block_size;	  /* bytes; 0 = the default */
	unsigned retries;	  /* 0 = the default */
};

/* Settings resolved for one mount; cfg's strings point into the arrays
 * (wipe the struct after use: it holds the key). */
struct ost_az_resolved {
	struct ost_az_config cfg;
	char container[64], prefix[OST_KEY_MAX + 1], endpoint[512];
	char account[64], key[256], sas[4096];
	char ca_bundle[4096];
};

/* True if `source` names an Azure container: az://CONTAINER[/PREFIX], or
 * a bare CONTAINER[:/PREFIX] while STORAGE_PLATFORM=Azure (ArrayMorph's
 * switch) is set. */
bool ost_az_source(const char *source);

/* Resolve the settings of an Azure mount of `source` (an empty container
 * is taken from $BUCKET_NAME).  Each setting comes from the first of: the
 * mount options `o` (may be NULL); AZURE_STORAGE_CONNECTION_STRING
 * (AccountName, AccountKey, SharedAccessSignature, BlobEndpoint,
 * DefaultEndpointsProtocol, EndpointSuffix, UseDevelopmentStorage);
 * AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN; the
 * defaults (https://ACCOUNT.blob.core.windows.net).  The credential (a key
 * or a SAS) comes whole from the first source that has one: passwd_file
 * or -o sas=, the connection string, the variables.  A passwd_file that
 * group or others may read is refused.  Returns 0, -EINVAL, -EACCES or
 * -ENOENT, after logging why. */
int ost_az_resolve(const char *source, const struct ost_az_opts *o,
		   struct ost_az_resolved *r);

#endif
