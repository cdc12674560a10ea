/*
 * azconf.c - where the Azure backend's settings come from (see azure.h):
 * mount options, then AZURE_STORAGE_CONNECTION_STRING, then the
 * AZURE_STORAGE_* variables, then defaults.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "azure.h"
#include "conf.h"
#include "log.h"

/* Azurite's development account (published in Microsoft's docs). */
#define DEV_ACCOUNT "devstoreaccount1"
#define DEV_KEY                                                              \
	"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZF" \
	"PTOtr/KBHBeksoGMGw=="
#define DEV_ENDPOINT "http://127.0.0.1:10000/" DEV_ACCOUNT

/* What a connection string says ("" where it is silent). */
struct connstr {
	char account[64], key[256], sas[4096], endpoint[512];
	char protocol[8], suffix[128];
	bool dev;
};

static int put(char *dst, size_t size, const char *v, size_t n,
	       const char *what)
{
	if (n >= size) {
		ch5_err("objstore: azure: %s is too long", what);
		return -EINVAL;
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

/* Parse "Name=Value;Name=Value;..." (names case-insensitive; a value may
 * hold '=', as keys and SAS tokens do). */
static int parse_connstr(const char *s, struct connstr *c)
{
	int rc = 0;

	while (*s && rc == 0) {
		size_t n = strcspn(s, ";"), nl;
		const char *eq = memchr(s, '=', n), *v;

		if (!eq) {
			if (n) {
				ch5_err("objstore: azure: "
					"AZURE_STORAGE_CONNECTION_STRING: "
					"'%.*s' is not Name=Value",
					(int)(n < 40 ? n : 40), s);
				return -EINVAL;
			}
			s += n + (s[n] == ';');
			continue;
		}
		nl = eq - s;
		v = eq + 1;
#define IS(name) (nl == strlen(name) && !strncasecmp(s, name, nl))
		if (IS("AccountName"))
			rc = put(c->account, sizeof(c->account), v,
				 s + n - v, "AccountName");
		else if (IS("AccountKey"))
			rc = put(c->key, sizeof(c->key), v, s + n - v,
				 "AccountKey");
		else if (IS("SharedAccessSignature"))
			rc = put(c->sas, sizeof(c->sas), v, s + n - v,
				 "SharedAccessSignature");
		else if (IS("BlobEndpoint"))
			rc = put(c->endpoint, sizeof(c->endpoint), v,
				 s + n - v, "BlobEndpoint");
		else if (IS("DefaultEndpointsProtocol"))
			rc = put(c->protocol, sizeof(c->protocol), v,
				 s + n - v, "DefaultEndpointsProtocol");
		else if (IS("EndpointSuffix"))
			rc = put(c->suffix, sizeof(c->suffix), v, s + n - v,
				 "EndpointSuffix");
		else if (IS("UseDevelopmentStorage"))
			c->dev = !strncasecmp(v, "true", s + n - v);
		/* Others (QueueEndpoint, TableEndpoint...) are not ours. */
#undef IS
		s += n + (s[n] == ';');
	}
	if (rc == 0 && c->dev) {
		if (!c->account[0])
			snprintf(c->account, sizeof(c->account), DEV_ACCOUNT);
		if (!c->key[0] && !c->sas[0])
			snprintf(c->key, sizeof(c->key), DEV_KEY);
		if (!c->endpoint[0])
			snprintf(c->endpoint, sizeof(c->endpoint),
				 DEV_ENDPOINT);
	}
	if (rc == 0 && c->protocol[0] && strcasecmp(c->protocol, "http") &&
	    strcasecmp(c->protocol, "https")) {
		ch5_err("objstore: azure: DefaultEndpointsProtocol=%s: expected "
			"http or https",
			c->protocol);
		rc = -EINVAL;
	}
	return rc;
}

bool ost_az_source(const char *source)
{
	const char *p = conf_env("STORAGE_PLATFORM");

	if (!source)
		return false;
	if (!strncmp(source, "az://", 5))
		return true;
	return p && !strcasecmp(p, "azure") && strncmp(source, "s3://", 5) &&
	       strncmp(source, "file://", 7) && strncmp(source, "mem://", 6) &&
	       source[0] != '/' && source[0] != '.';
}

/* Container and prefix of az://CONTAINER[/PREFIX] or CONTAINER[:/PREFIX]
 * (an empty container from $BUCKET_NAME). */
static int parse_source(const char *source, struct ost_az_resolved *r)
{
	const char *c, *pfx = "";
	size_t cl;

	if (!strncmp(source, "az://", 5)) {
		c = source + 5;
		cl = strcspn(c, "/");
	} else {
		c = source;
		cl = strcspn(c, ":/");
	}
	if (c[cl])
		pfx = c + cl + 1;
	if (!cl && conf_env("BUCKET_NAME")) { /* ArrayMorph's name for it */
		c = conf_env("BUCKET_NAME");
		cl = strlen(c);
	}
	if (!cl || cl >= sizeof(r->container)) {
		ch5_err("objstore: %s: expected az://CONTAINER[/PREFIX] (or "
			"CONTAINER[:/PREFIX] with STORAGE_PLATFORM=Azure)",
			source);
		return -EINVAL;
	}
	memcpy(r->container, c, cl);
	r->container[cl] = '\0';
	while (*pfx == '/')
		pfx++;
	return put(r->prefix, sizeof(r->prefix), pfx, strlen(pfx),
		   "the prefix");
}

static int set(char *dst, size_t size, const char *v, const char *what)
{
	return v && !dst[0] ? put(dst, size, v, strlen(v), what) : 0;
}

int ost_az_resolve(const char *source, const struct ost_az_opts *o,
		   struct ost_az_resolved *r)
{
	static const struct ost_az_opts none;
	struct connstr *c = calloc(1, sizeof(*c));
	const char *cs = conf_env("AZURE_STORAGE_CONNECTION_STRING");
	bool cred;
	int rc;

	memset(r, 0, sizeof(*r));
	if (!c)
		return -ENOMEM;
	if (!o)
		o = &none;
	rc = parse_source(source, r);
	if (rc == 0 && cs)
		rc = parse_connstr(cs, c);
	if (rc < 0)
		goto out;

	/* The credential, whole from the first source that has one. */
	if (o->passwd_file) {
		char user[64];

		rc = conf_passwd(o->passwd_file, "azure", "ACCOUNT:KEY",
				 r->container, user, sizeof(user), r->key,
				 sizeof(r->key));
		if (rc == 0)
			rc = set(r->account, sizeof(r->account),
				 o->account ? o->account : user, "account");
		OPENSSL_cleanse(user, sizeof(user));
	} else if (o->sas) {
		rc = set(r->sas, sizeof(r->sas), o->sas, "-o sas");
	} else if (c->key[0] || c->sas[0]) {
		memcpy(r->key, c->key, sizeof(r->key));
		memcpy(r->sas, c->sas, sizeof(r->sas));
	} else {
		rc = set(r->key, sizeof(r->key), conf_env("AZURE_STORAGE_KEY"),
			 "AZURE_STORAGE_KEY");
		if (rc == 0 && !r->key[0])
			rc = set(r->sas, sizeof(r->sas),
				 conf_env("AZURE_STORAGE_SAS_TOKEN"),
				 "AZURE_STORAGE_SAS_TOKEN");
	}
	if (rc < 0)
		goto out;
	rc = set(r->account, sizeof(r->account), o->account, "account");
	if (rc == 0)
		rc = set(r->account, sizeof(r->account),
			 c->account[0] ? c->account : NULL, "AccountName");
	if (rc == 0)
		rc = set(r->account, sizeof(r->account),
			 conf_env("AZURE_STORAGE_ACCOUNT"),
			 "AZURE_STORAGE_ACCOUNT");
	if (rc < 0)
		goto out;
	cred = r->key[0] || r->sas[0];
	if (!r->account[0] || !cred) {
		ch5_err("objstore: azure: %s: give -o passwd_file= (ACCOUNT:KEY) "
			"or -o account= and -o sas=, or set "
			"AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT "
			"and AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN",
			!r->account[0] ? "no storage account"
				       : "no credentials (a key or a SAS)");
		rc = -EINVAL;
		goto out;
	}

	/* The blob service's URL. */
	if (o->endpoint)
		rc = set(r->endpoint, sizeof(r->endpoint), o->endpoint,
			 "-o endpoint");
	else if (c->endpoint[0])
		rc = set(r->endpoint, sizeof(r->endpoint), c->endpoint,
			 "BlobEndpoint");
	else {
		int n = snprintf(r->endpoint, sizeof(r->endpoint),
				 "%s://%s.blob.%s",
				 c->protocol[0] ? c->protocol : "https",
				 r->account,
				 c->suffix[0] ? c->suffix : "core.windows.net");

		if (n < 0 || (size_t)n >= sizeof(r->endpoint)) {
			ch5_err("objstore: azure: the endpoint is too long");
			rc = -EINVAL;
		}
	}
	if (rc == 0 && !strstr(r->endpoint, "://")) {
		ch5_err("objstore: azure: endpoint %s: expected "
			"http[s]://HOST[:PORT][/ACCOUNT]",
			r->endpoint);
		rc = -EINVAL;
	}
	if (rc == 0 && o->ca_bundle)
		rc = conf_ca_bundle("azure", o->ca_bundle, "-o ca_bundle",
				    r->ca_bundle, sizeof(r->ca_bundle));
	if (rc < 0)
		goto out;
	r->cfg.endpoint = r->endpoint;
	r->cfg.account = r->account;
	r->cfg.container = r->container;
	r->cfg.prefix = r->prefix;
	r->cfg.key = r->key[0] ? r->key : NULL;
	r->cfg.sas = r->key[0] ? NULL : r->sas;
	r->cfg.insecure = o->insecure;
	r->cfg.ca_bundle = r->ca_bundle[0] ? r->ca_bundle : NULL;
	r->cfg.retries = o->retries;
	r->cfg.block_threshold = o->block_threshold;
	r->cfg.block_size = o->block_size;
out:
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
	if (rc < 0)
		OPENSSL_cleanse(r, sizeof(*r));
	return rc;
}
