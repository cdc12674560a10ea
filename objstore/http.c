/*
 * http.c - one libcurl multi handle and its event thread (see http.h).
 *
 * Callers queue transfers under `lock` and wake the thread with
 * curl_multi_wakeup(); the thread adds them to the multi handle, drives
 * every transfer with curl_multi_perform()/curl_multi_poll(), and signals
 * each caller when its transfer is done.  libcurl keeps the connections
 * alive in the multi handle's pool, at most max_connections of them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http.h"
#include "log.h"

#define TEXT_MAX_DEFAULT (16u << 20)

_Static_assert(sizeof(((struct ost_http_xfer *)0)->error) >= CURL_ERROR_SIZE,
	       "the error field is libcurl's CURLOPT_ERRORBUFFER");

struct job {
	struct ost_http_xfer *x;
	CURL *easy;
	struct curl_slist *hdrs;
	uint64_t sent;	/* body bytes handed to libcurl */
	int err;	/* a sink failed (-ENOMEM) */
	bool done;
	pthread_cond_t cond;
	struct job *next;
};

struct ost_http {
	struct ost_http_opts o;
	char *ca_file;
	CURLM *multi;
	pthread_mutex_t lock;
	struct job *queue;  /* guarded by lock: waiting to be added */
	bool stopping;	    /* guarded by lock */
	bool started;	    /* guarded by lock: the thread runs */
	pthread_t thread;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	struct ost_http_xfer *x = j->x;
	size_t len = size * n, off = 0;
	long status = 0;

	x->received += len;
	/* An error answer's body (an S3 or Azure error document) goes to the
	 * text sink even when the caller gave a data buffer: it is parsed
	 * for the error code and message, never taken for data. */
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
	if (x->buf && status < 300) {
		/* Drop what precedes the wanted range, keep at most buf_cap
		 * bytes; the rest is read and dropped. */
		if (x->skip) {
			off = x->skip < len ? x->skip : len;
			x->skip -= off;
		}
		if (off < len && x->got < x->buf_cap) {
			size_t k = len - off;

			if (k > x->buf_cap - x->got)
				k = x->buf_cap - x->got;
			memcpy((char *)x->buf + x->got, p + off, k);
			x->got += k;
		}
		return len;
	}
	{
		size_t max = x->text_max ? x->text_max : TEXT_MAX_DEFAULT;
		char *t;

		if (x->text_len + len > max)
			return len; /* bounded: an error page may be cut */
		t = realloc(x->text, x->text_len + len + 1);
		if (!t) {
			j->err = -ENOMEM;
			return 0; /* aborts the transfer */
		}
		memcpy(t + x->text_len, p, len);
		x->text = t;
		x->text_len += len;
		t[x->text_len] = '\0';
	}
	return len;
}

/* Copy the value of header line `p` (len bytes) into dst if its name is
 * `name`; trims blanks and the CRLF, and quotes when `unquote`. */
static void take_header(const char *p, size_t len, const char *name,
			char *dst, size_t dsz, bool unquote)
{
	size_t nl = strlen(name), vs, ve;

	if (len <= nl || p[nl] != ':' || strncasecmp(p, name, nl))
		return;
	vs = nl + 1;
	ve = len;
	while (vs < ve && (p[vs] == ' ' || p[vs] == '\t'))
		vs++;
	while (ve > vs && (p[ve - 1] == '\r' || p[ve - 1] == '\n' ||
			   p[ve - 1] == ' '))
		ve--;
	if (unquote && ve - vs >= 2 && p[vs] == '"' && p[ve - 1] == '"') {
		vs++;
		ve--;
	}
	if (ve - vs >= dsz)
		ve = vs + dsz - 1;
	memcpy(dst, p + vs, ve - vs);
	dst[ve - vs] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	struct ost_http_xfer *x = j->x;
	size_t len = size * n, i;
	char cl[32] = "";

	/* A new status line (after a 100 Continue, or a redirect) starts
	 * the headers over. */
	if (len > 5 && !strncmp(p, "HTTP/", 5)) {
		const char *sp = memchr(p, ' ', len);

		x->etag[0] = x->last_modified[0] = x->content_range[0] = '\0';
		for (i = 0; i < OST_HTTP_CAPTURE && x->capture[i]; i++)
			x->captured[i][0] = '\0';
		x->content_length = -1;
		/* A ranged GET answered with the whole object (200): drop
		 * the bytes before the range. */
		x->skip = sp && !strncmp(sp + 1, "200", 3) ? x->skip_if_full
							  : 0;
		return len;
	}
	take_header(p, len, "etag", x->etag, sizeof(x->etag), true);
	take_header(p, len, "last-modified", x->last_modified,
		    sizeof(x->last_modified), false);
	take_header(p, len, "content-range", x->content_range,
		    sizeof(x->content_range), false);
	take_header(p, len, "content-length", cl, sizeof(cl), false);
	if (cl[0])
		x->content_length = strtoll(cl, NULL, 10);
	for (i = 0; i < OST_HTTP_CAPTURE && x->capture[i]; i++)
		take_header(p, len, x->capture[i], x->captured[i],
			    sizeof(x->captured[i]), false);
	return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
	struct job *j = arg;
	struct ost_http_xfer *x = j->x;
	size_t want = size * n;
	uint64_t left = x->body_len - j->sent;

	if (want > left)
		want = left;
	if (!want)
		return 0;
	if (x->body) {
		memcpy(p, (const char *)x->body + j->sent, want);
	} else {
		ssize_t r;

		do
			r = pread(x->body_fd, p, want, x->body_off + j->sent);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			j->err = r < 0 ? -errno : -EIO;
			return CURL_READFUNC_ABORT;
		}
		want = r;
	}
	j->sent += want;
	return want;
}

/* libcurl may rewind a body to resend it (a redirect, a reused
 * connection that broke): bodies are random-access, so that is easy. */
static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct job *j = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > j->x->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	j->sent = off;
	return CURL_SEEKFUNC_OK;
}

static int setup(struct ost_http *h, struct job *j)
{
	struct ost_http_xfer *x = j->x;
	const char *const *hp;
	CURL *e = curl_easy_init();

	if (!e)
		return -ENOMEM;
	j->easy = e;
	for (hp = x->headers; hp && *hp; hp++) {
		struct curl_slist *l = curl_slist_append(j->hdrs, *hp);

		if (!l)
			return -ENOMEM;
		j->hdrs = l;
	}
	/* No "Expect: 100-continue" round trip before bodies. */
	{
		struct curl_slist *l = curl_slist_append(j->hdrs, "Expect:");

		if (!l)
			return -ENOMEM;
		j->hdrs = l;
	}
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, j);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->error);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, h->o.connect_timeout_s);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, h->o.low_speed_time_s);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Accept-Encoding stays unset: object bytes are never transcoded. */
	if (h->o.insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (h->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
	if (!strcmp(x->method, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(x->method, "PUT")) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
				 (curl_off_t)x->body_len);
	} else if (!strcmp(x->method, "POST")) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)x->body_len);
	} else if (strcmp(x->method, "GET")) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
	}
	if (x->body_len || !strcmp(x->method, "PUT") ||
	    !strcmp(x->method, "POST")) {
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(e, CURLOPT_READDATA, j);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, j);
	}
	return 0;
}

/* Mark j done and wake its caller (h->lock held). */
static void finish(struct job *j, CURLcode cc)
{
	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &j->x->status);
	j->x->curl_code = (int)cc;
	j->done = true;
	pthread_cond_signal(&j->cond);
}

static void *event_loop(void *arg)
{
	struct ost_http *h = arg;

	for (;;) {
		struct job *q;
		CURLMsg *msg;
		int running = 0, left;

		pthread_mutex_lock(&h->lock);
		q = h->queue;
		h->queue = NULL;
		if (h->stopping && !q) {
			pthread_mutex_unlock(&h->lock);
			break;
		}
		while (q) {
			struct job *next = q->next;

			if (curl_multi_add_handle(h->multi, q->easy) !=
			    CURLM_OK)
				finish(q, CURLE_OUT_OF_MEMORY);
			q = next;
		}
		pthread_mutex_unlock(&h->lock);
		curl_multi_perform(h->multi, &running);
		while ((msg = curl_multi_info_read(h->multi, &left))) {
			struct job *j = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&j);
			curl_multi_remove_handle(h->multi, msg->easy_handle);
			pthread_mutex_lock(&h->lock);
			finish(j, msg->data.result);
			pthread_mutex_unlock(&h->lock);
		}
		pthread_mutex_lock(&h->lock);
		if (h->stopping && !running && !h->queue) {
			pthread_mutex_unlock(&h->lock);
			break;
		}
		pthread_mutex_unlock(&h->lock);
		curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

int ost_http_new(const struct ost_http_opts *o, struct ost_http **out)
{
	struct ost_http *h;

	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		ch5_err("objstore: libcurl failed to initialize: %s",
			curl_easy_strerror(global_rc));
		return -EIO;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->o = *o;
	if (!h->o.max_connections)
		h->o.max_connections = 16;
	if (h->o.connect_timeout_s <= 0)
		h->o.connect_timeout_s = 10;
	if (h->o.low_speed_time_s <= 0)
		h->o.low_speed_time_s = 30;
	h->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
	h->o.ca_file = NULL;
	h->multi = curl_multi_init();
	if (!h->multi || (o->ca_file && !h->ca_file)) {
		free(h->ca_file);
		if (h->multi)
			curl_multi_cleanup(h->multi);
		free(h);
		return -ENOMEM;
	}
	curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)h->o.max_connections);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)h->o.max_connections);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
			  (long)h->o.max_connections);
	pthread_mutex_init(&h->lock, NULL);
	*out = h;
	return 0;
}

void ost_http_free(struct ost_http *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_mutex_unlock(&h->lock);
	if (h->started) {
		curl_multi_wakeup(h->multi);
		pthread_join(h->thread, NULL);
	}
	curl_multi_cleanup(h->multi);
	pthread_mutex_destroy(&h->lock);
	free(h->ca_file);
	free(h);
}

/* The one place a libcurl error becomes an errno. */
static int curl_errno(int cc)
{
	switch (cc) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return -ECONNRESET;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
		return -EPROTO; /* TLS: certificate or handshake */
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

const char *ost_http_hint(const struct ost_http_xfer *x)
{
	switch (x->curl_code) {
	case CURLE_PEER_FAILED_VERIFICATION:
		return "; the server's TLS certificate was not accepted: if a "
		       "private CA signed it, give that CA with -o "
		       "ca_bundle=FILE (or AWS_CA_BUNDLE, or ca_bundle in "
		       "~/.aws/config); the endpoint's host must be one the "
		       "certificate names; -o insecure skips the check";
	case CURLE_SSL_CACERT_BADFILE:
		return "; the CA bundle could not be loaded: it must hold PEM "
		       "CA certificates";
	case CURLE_SSL_CONNECT_ERROR:
		return "; the TLS handshake failed: if the server speaks plain "
		       "HTTP, use an http:// endpoint (or AWS_USE_TLS=false)";
	default:
		return "";
	}
}

int ost_http_run(struct ost_http *h, struct ost_http_xfer *x)
{
	struct job j;
	int rc;

	memset(&j, 0, sizeof(j));
	j.x = x;
	x->status = 0;
	x->got = 0;
	x->received = 0;
	x->etag[0] = x->last_modified[0] = x->content_range[0] = '\0';
	memset(x->captured, 0, sizeof(x->captured));
	x->error[0] = '\0';
	x->curl_code = 0;
	x->content_length = -1;
	rc = setup(h, &j);
	if (rc < 0)
		goto out;
	pthread_cond_init(&j.cond, NULL);
	pthread_mutex_lock(&h->lock);
	if (h->stopping) {
		pthread_mutex_unlock(&h->lock);
		pthread_cond_destroy(&j.cond);
		rc = -ESHUTDOWN;
		goto out;
	}
	if (!h->started) {
		rc = -pthread_create(&h->thread, NULL, event_loop, h);
		h->started = rc == 0;
		if (rc) {
			pthread_mutex_unlock(&h->lock);
			pthread_cond_destroy(&j.cond);
			ch5_err("objstore: cannot start the HTTP thread: %s",
				strerror(-rc));
			goto out;
		}
	}
	j.next = h->queue;
	h->queue = &j;
	curl_multi_wakeup(h->multi);
	while (!j.done)
		pthread_cond_wait(&j.cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	pthread_cond_destroy(&j.cond);
	rc = j.err ? j.err : curl_errno(x->curl_code);
	if (rc < 0 && !j.err && !x->error[0])
		snprintf(x->error, sizeof(x->error), "%s",
			 curl_easy_strerror((CURLcode)x->curl_code));
	if (rc < 0 && !j.err) /* never the query: it may hold a token */
		ch5_debug("objstore: %s %.*s: %s", x->method,
			  (int)strcspn(x->url, "?"), x->url, x->error);
	if (rc == 0 && !x->status)
		rc = -EIO;
out:
	if (j.easy)
		curl_easy_cleanup(j.easy);
	curl_slist_free_all(j.hdrs);
	return rc;
}
