/*
 * http.h - the HTTP engine of the S3 (and later Azure) backends: one
 * libcurl multi handle, driven by one event thread, serving a queue of
 * transfers over a bounded set of kept-alive connections.
 *
 * A backend operation builds a `struct ost_http_xfer` (method, URL,
 * headers, body source, response sinks), calls ost_http_run(), which queues
 * it and waits for its completion, and reads the status and headers.
 * Retries are the caller's (they re-sign the request).
 *
 * Thread-safety: ost_http_run() may be called from many threads at once;
 * each transfer is the caller's until it returns.
 */
#ifndef CH5_OST_HTTP_H
#define CH5_OST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ost_http;

#define OST_HTTP_CAPTURE 4 /* headers a transfer can ask for by name */

struct ost_http_opts {
	unsigned max_connections; /* connections kept and used at once */
	long connect_timeout_s;	  /* TCP/TLS connect, seconds */
	long low_speed_time_s;	  /* abort below 1 byte/s for this long */
	bool insecure;		  /* no TLS certificate verification */
	const char *ca_file;	  /* PEM CA certificates trusted instead of
				     the system's, or NULL (copied) */
};

/* One request and its answer. */
struct ost_http_xfer {
	/* request (borrowed until ost_http_run returns) */
	const char *method;	  /* "GET", "PUT", "HEAD", "POST", "DELETE" */
	const char *url;
	const char *const *headers; /* "Name: value" lines, NULL-terminated */
	const void *body;	  /* body from memory... */
	int body_fd;		  /* ...or from fd at body_off (body NULL) */
	uint64_t body_off;
	uint64_t body_len;	  /* 0 = no body */
	/* response sinks */
	void *buf;	   /* GET: body bytes land here... */
	size_t buf_cap;	   /* ...at most this many; a ranged GET answered
			      with the whole object (200) first drops: */
	uint64_t skip_if_full; /* the range's start */
	uint64_t skip;	   /* (internal) bytes still to drop */
	char *text;	   /* else: small bodies (XML) collected here, */
	size_t text_len;   /* malloc'd, NUL-terminated (caller frees), */
	size_t text_max;   /* at most this many bytes (0 = 16 MiB) */
	/* response (out) */
	long status;	   /* HTTP status, 0 when no answer came */
	int curl_code;	   /* CURLcode of the transfer */
	char error[256];   /* libcurl's words for a failed transfer ("SSL
			      certificate problem: ..."), else "" */
	size_t got;	   /* bytes stored in buf */
	uint64_t received; /* body bytes received in all */
	char etag[80];	   /* ETag header, quotes removed */
	char last_modified[64];
	char content_range[96];
	int64_t content_length; /* -1 when absent */
	/* More headers wanted (NULL-terminated up to OST_HTTP_CAPTURE names,
	 * borrowed): captured[i] receives the value of capture[i] ("" when
	 * absent), cut to fit. */
	const char *capture[OST_HTTP_CAPTURE];
	char captured[OST_HTTP_CAPTURE][128];
};

/* Start the engine (its event thread starts at the first transfer; as
 * for ost_new, fork before that, not after).  0, -ENOMEM or -EIO
 * (libcurl failed to initialize). */
int ost_http_new(const struct ost_http_opts *o, struct ost_http **out);

/* Stop the thread (transfers in flight end with an error) and free. */
void ost_http_free(struct ost_http *h);

/* Run one transfer and wait for it.  Returns 0 when an HTTP answer came
 * (whatever its status), or a negative errno when none did: -ETIMEDOUT
 * (connect or low-speed timeout), -ECONNREFUSED, -EHOSTUNREACH (DNS or
 * routing), -ECONNRESET (the connection broke), -EPROTO (TLS handshake or
 * certificate verification failed), -EIO (other libcurl errors), -ENOMEM,
 * -ESHUTDOWN; after a transport error x->error says why in libcurl's
 * words (no URL query, no header: nothing secret). */
int ost_http_run(struct ost_http *h, struct ost_http_xfer *x);

/* After ost_http_run() failed: a static sentence, starting with "; ",
 * that tells the user what to do about a TLS failure (a certificate not
 * trusted or not matching the host, a CA bundle that cannot be loaded, a
 * handshake with a server that does not speak TLS), or "" for any other
 * outcome. */
const char *ost_http_hint(const struct ost_http_xfer *x);

#endif
