/* The few C helpers Rust calls: things bindgen cannot express (variadic logging, APR and
 * bucket macros). Each is a one-line wrapper; the logic lives in Rust. */
#ifndef OXWSGI_SHIM_H
#define OXWSGI_SHIM_H

#include <httpd.h>
#include <http_config.h>
#include <apr_buckets.h>

/* ap_log_rerror / ap_log_error with a "%s" format, attributed to mod_wsgi's module index. */
void oxwsgi_log_rerror(const char *file, int line, int module_index, int level, apr_status_t status,
                       const request_rec *r, const char *msg);
void oxwsgi_log_error(const char *file, int line, int module_index, int level, apr_status_t status,
                      const server_rec *s, const char *msg);

/* Bucket and brigade macros. */
void oxwsgi_brigade_append(apr_bucket_brigade *bb, apr_bucket *b);
int oxwsgi_brigade_empty(apr_bucket_brigade *bb);
apr_bucket *oxwsgi_brigade_first(apr_bucket_brigade *bb);
apr_bucket *oxwsgi_brigade_sentinel(apr_bucket_brigade *bb);
apr_bucket *oxwsgi_bucket_next(apr_bucket *b);
int oxwsgi_bucket_is_eos(apr_bucket *b);
int oxwsgi_bucket_is_error(apr_bucket *b, int *status);
apr_status_t oxwsgi_bucket_read(apr_bucket *b, const char **str, apr_size_t *len, int block);
void oxwsgi_bucket_delete(apr_bucket *b);
apr_bucket *oxwsgi_bucket_eos_create(apr_bucket_alloc_t *list);
apr_bucket *oxwsgi_bucket_flush_create(apr_bucket_alloc_t *list);

/* Config helpers. */
void *oxwsgi_get_module_config(const ap_conf_vector_t *cv, const module *m);
const char *oxwsgi_cmd_file(const cmd_parms *cmd);
int oxwsgi_cmd_line(const cmd_parms *cmd);

#endif
