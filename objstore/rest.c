/*
 * rest.c - pieces shared by the REST backends (see rest.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <expat.h>

#include "ost.h"
#include "ost_int.h"
#include "rest.h"
#include "sigv4.h"

int64_t rest_http_date_ns(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!s[0] || !strptime(s, "%a, %d %b %Y %H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm) * 1000000000LL;
}

int64_t rest_iso_date_ns(const char *s)
{
	struct tm tm;
	const char *rest;
	int64_t ns = 0, mul = 100000000;

	memset(&tm, 0, sizeof(tm));
	rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!rest)
		return 0;
	if (*rest == '.')
		for (rest++; *rest >= '0' && *rest <= '9'; rest++, mul /= 10)
			ns += (*rest - '0') * mul;
	return (int64_t)timegm(&tm) * 1000000000LL + ns;
}

/* Percent-decode (encoding-type=url answers) into dst. */
void rest_url_decode(const char *s, char *dst, size_t size)
{
	size_t o = 0;

	for (; *s && o + 1 < size; s++) {
		unsigned v;

		if (*s == '%' && sscanf(s + 1, "%2x", &v) == 1) {
			dst[o++] = (char)v;
			s += 2;
		} else if (*s == '+') {
			dst[o++] = ' ';
		} else {
			dst[o++] = *s;
		}
	}
	dst[o] = '\0';
}

/* --- XML: a flat walk calling fn(arg, parent, name, text) at each
 * closing tag (text of leaf elements, "" for others). -------------- */


struct xml_walk {
	char stack[8][64];
	int depth;
	char text[OST_KEY_MAX * 3 + 64];
	size_t tlen;
	rest_xml_fn fn;
	void *arg;
};

static void XMLCALL xml_start(void *ud, const XML_Char *name,
			      const XML_Char **attrs)
{
	struct xml_walk *w = ud;

	(void)attrs;
	if (w->depth < 8)
		snprintf(w->stack[w->depth], sizeof(w->stack[0]), "%s", name);
	w->depth++;
	w->tlen = 0;
	w->text[0] = '\0';
}

static void XMLCALL xml_end(void *ud, const XML_Char *name)
{
	struct xml_walk *w = ud;
	const char *parent = w->depth >= 2 && w->depth - 2 < 8
				     ? w->stack[w->depth - 2]
				     : "";

	w->fn(w->arg, parent, name, w->text);
	w->depth--;
	w->tlen = 0;
	w->text[0] = '\0';
}

static void XMLCALL xml_text(void *ud, const XML_Char *s, int len)
{
	struct xml_walk *w = ud;

	if (w->tlen + len >= sizeof(w->text))
		len = sizeof(w->text) - 1 - w->tlen;
	memcpy(w->text + w->tlen, s, len);
	w->tlen += len;
	w->text[w->tlen] = '\0';
}

int rest_xml_parse(const char *doc, size_t len, rest_xml_fn fn, void *arg)
{
	XML_Parser p = XML_ParserCreate(NULL);
	struct xml_walk *w = calloc(1, sizeof(*w));
	int rc = 0;

	if (!p || !w) {
		if (p)
			XML_ParserFree(p);
		free(w);
		return -ENOMEM;
	}
	w->fn = fn;
	w->arg = arg;
	XML_SetUserData(p, w);
	XML_SetElementHandler(p, xml_start, xml_end);
	XML_SetCharacterDataHandler(p, xml_text);
	if (XML_Parse(p, doc ? doc : "", (int)len, 1) == XML_STATUS_ERROR)
		rc = -EPROTO;
	XML_ParserFree(p);
	free(w);
	return rc;
}

/* Sleep before attempt `n` (1, 2...): 100 ms doubling, capped at 5 s,
 * with full jitter. */
void rest_backoff(unsigned n)
{
	uint64_t cap = 100000ULL << (n < 6 ? n : 6), r = 0;

	if (cap > 5000000)
		cap = 5000000;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint64_t)ost_now_ns();
	usleep((useconds_t)(cap / 2 + r % (cap / 2 + 1)));
}

void rest_strip_quotes(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		memmove(s, s + 1, n - 2);
		s[n - 2] = '\0';
	}
}


bool rest_transport_retryable(int rc)
{
	return rc == -ETIMEDOUT || rc == -ECONNREFUSED || rc == -ECONNRESET ||
	       rc == -EHOSTUNREACH;
}

int rest_body_digest(const void *buf, int fd, uint64_t off, uint64_t len,
		     const EVP_MD *md, unsigned char *out, unsigned *outlen)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	char *chunk = NULL;
	uint64_t done = 0;
	int rc = 0;

	*outlen = 0;
	if (!c)
		return -ENOMEM;
	EVP_DigestInit_ex(c, md, NULL);
	if (buf) {
		EVP_DigestUpdate(c, buf, len);
	} else if (len) {
		chunk = malloc(1 << 20);
		if (!chunk)
			rc = -ENOMEM;
		while (!rc && done < len) {
			size_t want = len - done < (1u << 20) ? len - done
							      : 1u << 20;
			ssize_t n = pread(fd, chunk, want, off + done);

			if (n <= 0)
				rc = n < 0 ? -errno : -EIO;
			else
				EVP_DigestUpdate(c, chunk, n);
			done += n > 0 ? n : 0;
		}
	}
	EVP_DigestFinal_ex(c, out, outlen);
	EVP_MD_CTX_free(c);
	free(chunk);
	return rc;
}

int rest_status_errno(long status)
{
	switch (status) {
	case 400:
	case 411:
	case 413:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 408:
	case 504:
		return -ETIMEDOUT;
	case 507:
		return -ENOSPC;
	default:
		return -EIO;
	}
}

int rest_transport_errno(int rc)
{
	return rc == -ECONNREFUSED || rc == -ECONNRESET ||
			       rc == -EHOSTUNREACH || rc == -EPROTO
		       ? -EIO
		       : rc;
}

void rest_fill_info(const struct ost_http_xfer *x, struct ost_info *info,
		    uint64_t size)
{
	memset(info, 0, sizeof(*info));
	info->size = size;
	info->mtime_ns = rest_http_date_ns(x->last_modified);
	snprintf(info->etag, sizeof(info->etag), "%s", x->etag);
}

uint64_t rest_object_size(const struct ost_http_xfer *x)
{
	const char *slash = strchr(x->content_range, '/');

	if (x->status == 206 && slash)
		return strtoull(slash + 1, NULL, 10);
	return x->content_length >= 0 ? (uint64_t)x->content_length : 0;
}

int rest_url_query(char *url, size_t *ul, size_t usz, bool first,
		   const char *name, const char *value)
{
	int k;

	if (*ul + 2 >= usz)
		return -ENAMETOOLONG;
	url[(*ul)++] = first ? '?' : '&';
	k = sigv4_uri_encode(name, strlen(name), false, url + *ul, usz - *ul);
	if (k < 0)
		return k;
	*ul += k;
	if (*ul + 2 >= usz)
		return -ENAMETOOLONG;
	url[(*ul)++] = '=';
	k = sigv4_uri_encode(value, strlen(value), false, url + *ul,
			     usz - *ul);
	if (k < 0)
		return k;
	*ul += k;
	return 0;
}
