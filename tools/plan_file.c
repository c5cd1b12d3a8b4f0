/* MACHINE.json and PLAN.json (plan_file.h). */
#include "plan_file.h"

#include "args.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ==== Machine ==== */

int machine_cache_path(const struct pf_machine *mc, char *buf, size_t cap)
{
    char dir[3000];
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (x && *x) snprintf(dir, sizeof dir, "%s/pinfer", x);
    else if (h && *h) snprintf(dir, sizeof dir, "%s/.cache/pinfer", h);
    else return -1;
    char parent[3000];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) { *slash = 0; mkdir(parent, 0755); }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -1;
    /* FNV-1a of the key: one file per (CPU, kernel, disk) */
    uint64_t k = 0xcbf29ce484222325ull;
    const char *parts[3] = { mc->cpu, mc->kernel, mc->disk };
    for (int i = 0; i < 3; i++)
        for (const char *p = parts[i]; ; p++) {
            k = (k ^ (unsigned char)*p) * 0x100000001b3ull;
            if (!*p) break;
        }
    int n = snprintf(buf, cap, "%s/machine-%016llx.json", dir, (unsigned long long)k);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static json_t *darray(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

static int save_json(const char *cmd, const char *path, json_t *j)
{
    struct pinfer_outfile *of = NULL;
    if (pinfer_outfile_open(&of, path)) { json_decref(j); return args_pinfer_error(cmd); }
    int rc = json_dumpf(j, pinfer_outfile_stream(of), JSON_INDENT(2) | JSON_REAL_PRECISION(6)) ||
             fputc('\n', pinfer_outfile_stream(of)) == EOF;
    json_decref(j);
    if (rc) { pinfer_outfile_abort(of); return args_error(cmd, "writing %s failed", path); }
    return pinfer_outfile_commit(of) ? args_pinfer_error(cmd) : 0;
}

int machine_save(const char *cmd, const char *path, const struct pf_machine *mc)
{
    json_t *j = json_object(), *scat = json_array(), *kern = json_object(), *io = json_object();
    json_object_set_new(j, "format", json_string("pinfer-machine-1"));
    json_object_set_new(j, "cpu", json_string(mc->cpu));
    json_object_set_new(j, "kernel", json_string(mc->kernel));
    json_object_set_new(j, "disk", json_string(mc->disk));
    json_object_set_new(j, "cores", json_integer(mc->cores));
    json_object_set_new(j, "stream_gbs", darray(mc->stream_gbs, mc->n_t));
    double rows[PF_MACH_ROWS];
    for (int k = 0; k < PF_MACH_ROWS; k++) rows[k] = (double)pf_mach_rows[k];
    json_object_set_new(j, "scatter_row_bytes", darray(rows, PF_MACH_ROWS));
    for (int t = 0; t < mc->n_t; t++) json_array_append_new(scat, darray(mc->scatter_gbs[t], PF_MACH_ROWS));
    json_object_set_new(j, "scatter_gbs", scat);
    for (int ty = 0; ty < PF_TYPE_COUNT; ty++) {
        if (!mc->type_done[ty]) continue;
        json_t *o = json_object();
        json_object_set_new(o, "matvec_gbs", json_real(mc->matvec_gbs[ty]));
        json_object_set_new(o, "gemm_gmacs", json_real(mc->gemm_gmacs[ty]));
        json_object_set_new(kern, pf_type_name(ty), o);
    }
    json_object_set_new(j, "kernels_per_thread", kern);
    double bs[PF_MACH_BS], qd[PF_MACH_QD];
    for (int b = 0; b < PF_MACH_BS; b++) bs[b] = (double)pf_mach_bs[b];
    for (int q = 0; q < PF_MACH_QD; q++) qd[q] = pf_mach_qd[q];
    json_object_set_new(j, "io_request_bytes", darray(bs, PF_MACH_BS));
    json_object_set_new(j, "io_queue_depths", darray(qd, PF_MACH_QD));
    for (int be = 0; be < PF_MACH_BE; be++) {
        if (!mc->be_ok[be]) continue;
        json_t *o = json_object(), *iops = json_array(), *gbs = json_array();
        for (int b = 0; b < PF_MACH_BS; b++) {
            json_array_append_new(iops, darray(mc->iops[be][b], PF_MACH_QD));
            json_array_append_new(gbs, darray(mc->io_gbs[be][b], PF_MACH_QD));
        }
        json_object_set_new(o, "iops", iops);
        json_object_set_new(o, "gbs", gbs);
        json_object_set_new(io, pf_mach_be[be], o);
    }
    json_object_set_new(j, "io", io);
    return save_json(cmd, path, j);
}

/* A non-negative finite number into *v; false otherwise. */
static bool get_num(json_t *e, double *v)
{
    if (!json_is_number(e)) return false;
    *v = json_number_value(e);
    return *v >= 0 && isfinite(*v);
}

/* n such numbers of array a into v; false otherwise. */
static bool get_darray(json_t *a, double *v, int n)
{
    if (!json_is_array(a) || (int)json_array_size(a) != n) return false;
    for (int i = 0; i < n; i++)
        if (!get_num(json_array_get(a, (size_t)i), &v[i])) return false;
    return true;
}

static void copy_str(char *dst, size_t cap, json_t *s)
{
    snprintf(dst, cap, "%s", json_is_string(s) ? json_string_value(s) : "");
}

int machine_load(const char *cmd, const char *path, struct pf_machine *mc)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) return args_error(cmd, "%s: %s (line %d)", path, err.text, err.line);
    memset(mc, 0, sizeof *mc);
    int rc = 0;
    const char *fmt = json_string_value(json_object_get(j, "format"));
    if (!fmt || strcmp(fmt, "pinfer-machine-1")) { rc = args_error(cmd, "%s is not a machine profile of pinfer probe", path); goto out; }
    copy_str(mc->cpu, sizeof mc->cpu, json_object_get(j, "cpu"));
    copy_str(mc->kernel, sizeof mc->kernel, json_object_get(j, "kernel"));
    copy_str(mc->disk, sizeof mc->disk, json_object_get(j, "disk"));
    json_int_t cores = json_integer_value(json_object_get(j, "cores"));
    json_t *st = json_object_get(j, "stream_gbs"), *sc = json_object_get(j, "scatter_gbs");
    size_t nt = json_array_size(st);
    if (cores < 1 || cores > 4096 || nt < 1 || nt > PF_MACH_MAX_T || json_array_size(sc) != nt) {
        rc = args_error(cmd, "%s: cores, stream_gbs or scatter_gbs missing or out of range", path);
        goto out;
    }
    mc->cores = (int)cores;
    mc->n_t = (int)nt;
    bool ok = get_darray(st, mc->stream_gbs, mc->n_t);
    for (int t = 0; ok && t < mc->n_t; t++) ok = get_darray(json_array_get(sc, (size_t)t), mc->scatter_gbs[t], PF_MACH_ROWS);
    json_t *kern = json_object_get(j, "kernels_per_thread");
    const char *name;
    json_t *o;
    json_object_foreach(kern, name, o) {
        int ty = 0;
        while (ty < PF_TYPE_COUNT && strcmp(pf_type_name(ty), name)) ty++;
        if (ty == PF_TYPE_COUNT) continue;
        if (get_num(json_object_get(o, "matvec_gbs"), &mc->matvec_gbs[ty]) &&
            get_num(json_object_get(o, "gemm_gmacs"), &mc->gemm_gmacs[ty]))
            mc->type_done[ty] = true;
        else
            ok = false;
    }
    json_t *io = json_object_get(j, "io");
    for (int be = 0; ok && be < PF_MACH_BE; be++) {
        json_t *b = json_object_get(io, pf_mach_be[be]);
        if (!b) continue;
        json_t *iops = json_object_get(b, "iops"), *gbs = json_object_get(b, "gbs");
        if (json_array_size(iops) != PF_MACH_BS || json_array_size(gbs) != PF_MACH_BS) { ok = false; break; }
        for (int k = 0; ok && k < PF_MACH_BS; k++)
            ok = get_darray(json_array_get(iops, (size_t)k), mc->iops[be][k], PF_MACH_QD) &&
                 get_darray(json_array_get(gbs, (size_t)k), mc->io_gbs[be][k], PF_MACH_QD);
        mc->be_ok[be] = ok;
    }
    if (!ok || (!mc->be_ok[0] && !mc->be_ok[1])) rc = args_error(cmd, "%s: a figure is missing, negative or malformed", path);
out:
    json_decref(j);
    return rc;
}

/* ==== Plan ==== */

static json_t *prediction(const struct pf_prediction *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "decode_tps", json_real(p->decode_tps));
    json_object_set_new(o, "prefill_tps", json_real(p->prefill_tps));
    json_object_set_new(o, "hit_rate", json_real(p->hit_rate));
    json_object_set_new(o, "storage_mb_per_token", json_real(p->storage_mb_per_token));
    json_object_set_new(o, "reads_per_token", json_real(p->reads_per_token));
    return o;
}

int plan_save(const char *cmd, const char *path, const char *model, const struct pf_machine *mc,
              const struct pf_plan_result *r)
{
    const struct pf_plan_point *c = &r->chosen;
    json_t *j = json_object(), *s = json_object(), *curve = json_array();
    json_object_set_new(j, "format", json_string("pinfer-plan-1"));
    json_object_set_new(j, "model", json_string(model));
    json_object_set_new(j, "machine", json_string(mc->cpu));
    json_object_set_new(j, "mem_budget", json_integer((json_int_t)c->budget));
    json_object_set_new(s, "sparse", json_string(r->sparse ? "predictor" : "off"));
    json_object_set_new(s, "cache_hot", json_real(c->budget ? c->cache_hot : 1.0));
    json_object_set_new(s, "io_backend", json_string(pf_mach_be[r->io_backend]));
    json_object_set_new(s, "io_queue_depth", json_integer(r->io_depth));
    json_object_set_new(s, "prefetch", json_false());
    json_object_set_new(s, "threads", json_integer(r->threads));
    json_object_set_new(s, "ctx_size", json_integer(r->n_ctx));
    json_object_set_new(s, "batch_size", json_integer(r->n_batch));
    json_object_set_new(s, "hot_slots_per_layer", json_integer(c->n_hot));
    json_object_set_new(s, "cold_entries", json_integer(c->n_cold));
    json_object_set_new(j, "settings", s);
    json_object_set_new(j, "predicted", prediction(&c->pr));
    json_object_set_new(j, "min_budget", json_integer((json_int_t)r->min_budget));
    json_object_set_new(j, "in_memory_bytes", json_integer((json_int_t)r->in_memory));
    json_object_set_new(j, "in_memory_decode_tps", json_real(r->roof_tps));
    for (int i = 0; i < r->n_curve; i++) {
        json_t *o = prediction(&r->curve[i].pr);
        json_object_set_new(o, "mem_budget", json_integer((json_int_t)r->curve[i].budget));
        json_object_set_new(o, "cache_hot", json_real(r->curve[i].cache_hot));
        json_array_append_new(curve, o);
    }
    json_object_set_new(j, "curve", curve);
    return save_json(cmd, path, j);
}

int plan_load(const char *cmd, const char *path, struct plan_file *pf)
{
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j) return args_error(cmd, "--plan %s: %s (line %d)", path, err.text, err.line);
    memset(pf, 0, sizeof *pf);
    int rc = 0;
    const char *fmt = json_string_value(json_object_get(j, "format"));
    json_t *s = json_object_get(j, "settings"), *p = json_object_get(j, "predicted");
    json_t *mb = json_object_get(j, "mem_budget");
    const char *sp = json_string_value(json_object_get(s, "sparse")), *io = json_string_value(json_object_get(s, "io_backend"));
    json_t *hot = json_object_get(s, "cache_hot"), *thr = json_object_get(s, "threads");
    if (!fmt || strcmp(fmt, "pinfer-plan-1") || !json_is_integer(mb) || json_integer_value(mb) < 0 || !sp || !io ||
        !json_is_number(hot) || !json_is_integer(thr) || !json_is_object(p)) {
        rc = args_error(cmd, "--plan %s is not a plan of pinfer plan (format, mem_budget or settings missing)", path);
        goto out;
    }
    pf->mem_budget = (uint64_t)json_integer_value(mb);
    if (pinfer_sparse_mode_parse(sp, &pf->sparse)) { rc = args_error(cmd, "--plan %s: %s", path, pinfer_last_error()); goto out; }
    pf->cache_hot = (float)json_number_value(hot);
    pf->threads = (int)json_integer_value(thr);
    pf->prefetch = json_is_true(json_object_get(s, "prefetch"));
    json_int_t cs = json_integer_value(json_object_get(s, "ctx_size"));
    pf->ctx_size = cs > 0 && cs <= (1 << 22) ? (int)cs : 0;
    json_int_t bs = json_integer_value(json_object_get(s, "batch_size"));
    pf->batch_size = bs > 0 && bs <= (1 << 22) ? (int)bs : 0;
    json_int_t qd = json_integer_value(json_object_get(s, "io_queue_depth"));
    pf->io_depth = qd > 0 && qd <= 4096 ? (int)qd : 0;
    if (!strcmp(io, "uring")) pf->io_backend = PINFER_IO_URING;
    else if (!strcmp(io, "pread")) pf->io_backend = PINFER_IO_PREAD;
    else if (!strcmp(io, "auto")) pf->io_backend = PINFER_IO_AUTO;
    else { rc = args_error(cmd, "--plan %s: unknown io_backend '%s'", path, io); goto out; }
    if (!(pf->cache_hot >= 0 && pf->cache_hot <= 1) || pf->threads < 1 || pf->threads > 1024) {
        rc = args_error(cmd, "--plan %s: cache_hot or threads out of range", path);
        goto out;
    }
    pf->decode_tps = json_number_value(json_object_get(p, "decode_tps"));
    pf->prefill_tps = json_number_value(json_object_get(p, "prefill_tps"));
    pf->hit_rate = json_number_value(json_object_get(p, "hit_rate"));
    pf->storage_mb_per_token = json_number_value(json_object_get(p, "storage_mb_per_token"));
out:
    json_decref(j);
    return rc;
}
