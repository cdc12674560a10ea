/*
 * s3conf.c - where the S3 backend's settings come from (see s3.h):
 * mount options, then the environment, then ~/.aws/credentials and
 * ~/.aws/config, then defaults.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "azure.h"
#include "conf.h"
#include "s3.h"
#include "log.h"

static int copy(char *dst, size_t size, const char *src, const char *what)
{
	if (!src)
		return 0;
	if (strlen(src) >= size) {
		ch5_err("objstore: s3: %s is too long", what);
		return -EINVAL;
	}
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

static int truth(const char *v, const char *what, int *out)
{
	if (!v)
		return 0;
	if (!strcasecmp(v, "1") || !strcasecmp(v, "true") ||
	    !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
		*out = 1;
	else if (!strcasecmp(v, "0") || !strcasecmp(v, "false") ||
		 !strcasecmp(v, "no") || !strcasecmp(v, "off"))
		*out = 0;
	else {
		ch5_err("objstore: s3: %s=%s is not true or false", what, v);
		return -EINVAL;
	}
	return 0;
}

/* What a profile of ~/.aws/credentials and ~/.aws/config says. */
struct profile {
	char access[256], secret[256], token[4096];
	char region[64], endpoint[512], addressing[16];
	char ca_bundle[4096];
	char config_file[4096]; /* where ca_bundle was read, for messages */
};

/* Read section `section` of the INI file at `path` into p.  A missing
 * file is no error. */
static void read_ini(const char *path, const char *section,
		     struct profile *p)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	bool in = false, in_s3 = false;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		bool indented = line[0] == ' ' || line[0] == '\t';
		char *eq;

		conf_trim(line);
		if (!line[0] || line[0] == '#' || line[0] == ';')
			continue;
		if (line[0] == '[') {
			char *end = strchr(line, ']');

			if (end)
				*end = '\0';
			conf_trim(line + 1);
			in = !strcmp(line + 1, section);
			in_s3 = false;
			continue;
		}
		if (!in || !(eq = strchr(line, '=')))
			continue;
		*eq = '\0';
		conf_trim(line);
		conf_trim(eq + 1);
		if (!indented)
			in_s3 = !strcmp(line, "s3") && !eq[1];
		if (indented && in_s3) {
			if (!strcmp(line, "addressing_style"))
				snprintf(p->addressing, sizeof(p->addressing),
					 "%s", eq + 1);
			else if (!strcmp(line, "endpoint_url"))
				snprintf(p->endpoint, sizeof(p->endpoint),
					 "%s", eq + 1);
			continue;
		}
		if (!strcmp(line, "aws_access_key_id"))
			snprintf(p->access, sizeof(p->access), "%s", eq + 1);
		else if (!strcmp(line, "aws_secret_access_key"))
			snprintf(p->secret, sizeof(p->secret), "%s", eq + 1);
		else if (!strcmp(line, "aws_session_token"))
			snprintf(p->token, sizeof(p->token), "%s", eq + 1);
		else if (!strcmp(line, "region"))
			snprintf(p->region, sizeof(p->region), "%s", eq + 1);
		else if (!strcmp(line, "endpoint_url") && !p->endpoint[0])
			snprintf(p->endpoint, sizeof(p->endpoint), "%s",
				 eq + 1);
		else if (!strcmp(line, "ca_bundle")) {
			snprintf(p->ca_bundle, sizeof(p->ca_bundle), "%s",
				 eq + 1);
			snprintf(p->config_file, sizeof(p->config_file), "%s",
				 path);
		}
	}
	fclose(f);
}

static void read_profile(const char *name, struct profile *p)
{
	const char *home = conf_env("HOME");
	char path[4096], section[300];
	const char *f;

	if (!home) {
		struct passwd *pw = getpwuid(getuid());

		home = pw ? pw->pw_dir : "/";
	}
	f = conf_env("AWS_SHARED_CREDENTIALS_FILE");
	if (!f) {
		snprintf(path, sizeof(path), "%s/.aws/credentials", home);
		f = path;
	}
	read_ini(f, name, p);
	f = conf_env("AWS_CONFIG_FILE");
	if (!f) {
		snprintf(path, sizeof(path), "%s/.aws/config", home);
		f = path;
	}
	if (strcmp(name, "default"))
		snprintf(section, sizeof(section), "profile %s", name);
	else
		snprintf(section, sizeof(section), "default");
	read_ini(f, section, p);
}

bool ost_s3_source(const char *source)
{
	return source && strncmp(source, "file://", 7) &&
	       strncmp(source, "mem://", 6) && !ost_az_source(source) &&
	       source[0] != '/' && source[0] != '.';
}

int ost_s3_resolve(const char *source, const struct ost_s3_opts *o,
		   struct ost_s3_resolved *r)
{
	static const struct ost_s3_opts none = { .signed_payloads = -1 };
	struct profile p;
	const char *b, *pfx = "", *v, *ep, *prof, *addr;
	size_t bl;
	int use_tls = 1, rc = 0, sp = 0;

	memset(r, 0, sizeof(*r));
	memset(&p, 0, sizeof(p));
	if (!o)
		o = &none;
	/* s3://bucket/prefix, bucket:/prefix, bucket */
	if (!strncmp(source, "s3://", 5)) {
		b = source + 5;
		bl = strcspn(b, "/");
		if (b[bl])
			pfx = b + bl + 1;
	} else {
		b = source;
		bl = strcspn(b, ":");
		if (b[bl])
			pfx = b + bl + 1;
	}
	if (!bl && conf_env("BUCKET_NAME")) { /* ArrayMorph's name for it */
		b = conf_env("BUCKET_NAME");
		bl = strlen(b);
	}
	if (!bl || bl >= sizeof(r->bucket) || strchr(pfx, ':')) {
		ch5_err("objstore: %s: expected BUCKET, BUCKET:/PREFIX or "
			"s3://BUCKET/PREFIX",
			source);
		return -EINVAL;
	}
	memcpy(r->bucket, b, bl);
	r->bucket[bl] = '\0';
	while (*pfx == '/')
		pfx++;
	rc |= copy(r->prefix, sizeof(r->prefix), pfx, "the prefix");

	prof = o->profile ? o->profile
			  : conf_env("AWS_PROFILE") ? conf_env("AWS_PROFILE") : "default";
	read_profile(prof, &p);

	/* Credentials: passwd_file, environment, credentials file. */
	if (o->passwd_file) {
		int prc = conf_passwd(o->passwd_file, "s3", "ACCESS:SECRET",
				      r->bucket, r->access,
				      sizeof(r->access), r->secret,
				      sizeof(r->secret));

		if (prc < 0)
			return prc;
	} else if (conf_env("AWS_ACCESS_KEY_ID") && conf_env("AWS_SECRET_ACCESS_KEY")) {
		rc |= copy(r->access, sizeof(r->access),
			   conf_env("AWS_ACCESS_KEY_ID"), "AWS_ACCESS_KEY_ID");
		rc |= copy(r->secret, sizeof(r->secret),
			   conf_env("AWS_SECRET_ACCESS_KEY"),
			   "AWS_SECRET_ACCESS_KEY");
		rc |= copy(r->token, sizeof(r->token),
			   conf_env("AWS_SESSION_TOKEN"), "AWS_SESSION_TOKEN");
	} else {
		memcpy(r->access, p.access, sizeof(r->access));
		memcpy(r->secret, p.secret, sizeof(r->secret));
		memcpy(r->token, p.token, sizeof(p.token));
	}
	if (!r->access[0] || !r->secret[0]) {
		ch5_err("objstore: s3: no credentials: give -o passwd_file=, "
			"set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
			"add profile [%s] to ~/.aws/credentials",
			prof);
		return -EINVAL;
	}

	v = o->region ? o->region
	    : conf_env("AWS_REGION") ? conf_env("AWS_REGION")
	    : conf_env("AWS_DEFAULT_REGION") ? conf_env("AWS_DEFAULT_REGION")
	    : p.region[0] ? p.region : "us-east-1";
	rc |= copy(r->region, sizeof(r->region), v, "the region");

	ep = o->endpoint ? o->endpoint
	     : conf_env("AWS_ENDPOINT_URL_S3") ? conf_env("AWS_ENDPOINT_URL_S3")
	     : conf_env("AWS_ENDPOINT_URL") ? conf_env("AWS_ENDPOINT_URL")
	     : p.endpoint[0] ? p.endpoint : NULL;
	if (truth(conf_env("AWS_USE_TLS"), "AWS_USE_TLS", &use_tls) < 0)
		return -EINVAL;
	if (ep && !strstr(ep, "://")) {
		/* host[:port]: the scheme comes from AWS_USE_TLS. */
		if (strlen(ep) + sizeof("https://") > sizeof(r->endpoint)) {
			ch5_err("objstore: s3: the endpoint is too long");
			return -EINVAL;
		}
		{
			const char *sch = use_tls ? "https://" : "http://";
			size_t sl = strlen(sch);

			memcpy(r->endpoint, sch, sl);
			memcpy(r->endpoint + sl, ep, strlen(ep) + 1);
		}
	} else if (ep) {
		if (conf_env("AWS_USE_TLS") &&
		    (strncmp(ep, "https://", 8) == 0) != (use_tls != 0)) {
			ch5_err("objstore: s3: AWS_USE_TLS=%s but the endpoint "
				"is %s",
				conf_env("AWS_USE_TLS"), ep);
			return -EINVAL;
		}
		rc |= copy(r->endpoint, sizeof(r->endpoint), ep, "the endpoint");
	}

	addr = o->addressing ? o->addressing
	       : conf_env("AWS_S3_ADDRESSING_STYLE") ? conf_env("AWS_S3_ADDRESSING_STYLE")
	       : p.addressing[0] ? p.addressing : NULL;
	if (addr && strcasecmp(addr, "path") && strcasecmp(addr, "virtual") &&
	    strcasecmp(addr, "auto")) {
		ch5_err("objstore: s3: addressing=%s: expected path or virtual",
			addr);
		return -EINVAL;
	}
	/* Default: virtual-hosted on AWS, path-style on other endpoints
	 * (which rarely have wildcard DNS). */
	r->cfg.virtual_host = addr && strcasecmp(addr, "auto")
				      ? !strcasecmp(addr, "virtual")
				      : !r->endpoint[0];

	if (o->signed_payloads >= 0)
		sp = o->signed_payloads;
	else if (truth(conf_env("AWS_SIGNED_PAYLOADS"), "AWS_SIGNED_PAYLOADS",
		       &sp) < 0)
		return -EINVAL;

	/* The CA certificates to trust instead of the system's, as the AWS
	 * CLI takes them. */
	{
		char from[4200];
		int crc = 0;

		if (o->ca_bundle) {
			crc = conf_ca_bundle("s3", o->ca_bundle, "-o ca_bundle",
					r->ca_bundle, sizeof(r->ca_bundle));
		} else if (conf_env("AWS_CA_BUNDLE")) {
			crc = conf_ca_bundle("s3", conf_env("AWS_CA_BUNDLE"), "AWS_CA_BUNDLE",
					r->ca_bundle, sizeof(r->ca_bundle));
		} else if (p.ca_bundle[0]) {
			snprintf(from, sizeof(from), "profile %s of %s", prof,
				 p.config_file);
			crc = conf_ca_bundle("s3", p.ca_bundle, from, r->ca_bundle,
					sizeof(r->ca_bundle));
		}
		if (crc < 0) {
			memset(&p, 0, sizeof(p)); /* secrets */
			return crc;
		}
	}
	if (rc)
		return -EINVAL;
	r->cfg.endpoint = r->endpoint[0] ? r->endpoint : NULL;
	r->cfg.region = r->region;
	r->cfg.bucket = r->bucket;
	r->cfg.prefix = r->prefix;
	r->cfg.access_key = r->access;
	r->cfg.secret_key = r->secret;
	r->cfg.session_token = r->token[0] ? r->token : NULL;
	r->cfg.signed_payloads = sp;
	r->cfg.insecure = o->insecure;
	r->cfg.multipart_threshold = o->multipart_threshold;
	r->cfg.part_size = o->part_size;
	r->cfg.retries = o->retries;
	r->cfg.ca_bundle = r->ca_bundle[0] ? r->ca_bundle : NULL;
	memset(&p, 0, sizeof(p)); /* secrets */
	return 0;
}
