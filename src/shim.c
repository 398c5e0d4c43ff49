/* Wrappers for what bindgen cannot express. See include/shim.h. */
#include "shim.h"
#include <http_log.h>
#include <util_filter.h>
#include <http_protocol.h>

void oxwsgi_log_rerror(const char *file, int line, int module_index, int level, apr_status_t status,
                       const request_rec *r, const char *msg)
{
    ap_log_rerror_(file, line, module_index, level, status, r, "%s", msg);
}

void oxwsgi_log_error(const char *file, int line, int module_index, int level, apr_status_t status,
                      const server_rec *s, const char *msg)
{
    ap_log_error_(file, line, module_index, level, status, s, "%s", msg);
}

void oxwsgi_brigade_append(apr_bucket_brigade *bb, apr_bucket *b) { APR_BRIGADE_INSERT_TAIL(bb, b); }
int oxwsgi_brigade_empty(apr_bucket_brigade *bb) { return APR_BRIGADE_EMPTY(bb); }
apr_bucket *oxwsgi_brigade_first(apr_bucket_brigade *bb) { return APR_BRIGADE_FIRST(bb); }
apr_bucket *oxwsgi_brigade_sentinel(apr_bucket_brigade *bb) { return APR_BRIGADE_SENTINEL(bb); }
apr_bucket *oxwsgi_bucket_next(apr_bucket *b) { return APR_BUCKET_NEXT(b); }
int oxwsgi_bucket_is_eos(apr_bucket *b) { return APR_BUCKET_IS_EOS(b); }
int oxwsgi_bucket_is_error(apr_bucket *b, int *status)
{
    if (AP_BUCKET_IS_ERROR(b)) {
        *status = ((ap_bucket_error *)b->data)->status;
        return 1;
    }
    return 0;
}
apr_status_t oxwsgi_bucket_read(apr_bucket *b, const char **str, apr_size_t *len, int block)
{
    return apr_bucket_read(b, str, len, block ? APR_BLOCK_READ : APR_NONBLOCK_READ);
}
void oxwsgi_bucket_delete(apr_bucket *b) { apr_bucket_delete(b); }
apr_bucket *oxwsgi_bucket_eos_create(apr_bucket_alloc_t *list) { return apr_bucket_eos_create(list); }
apr_bucket *oxwsgi_bucket_flush_create(apr_bucket_alloc_t *list) { return apr_bucket_flush_create(list); }

void *oxwsgi_get_module_config(const ap_conf_vector_t *cv, const module *m)
{
    return ap_get_module_config(cv, m);
}
const char *oxwsgi_cmd_file(const cmd_parms *cmd)
{
    return cmd->config_file ? cmd->config_file->name : "(unknown)";
}
int oxwsgi_cmd_line(const cmd_parms *cmd) { return cmd->config_file ? (int)cmd->config_file->line_number : 0; }
