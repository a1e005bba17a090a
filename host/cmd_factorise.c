/* dlab-gpu --task factorise: load or synthesise the matrix, run the task,
 * report in text and JSON. */
#include "dlab/cmd.h"
#include "dlab/data.h"
#include "dlab/factorise.h"
#include "dlab/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void write_json(FILE *f, const dl_cmd *c, const char *source, bool centred,
                       const dl_factorise_config *cfg, const dl_factorise_result *r)
{
    dl_json j;
    dl_json_init(&j, f, false);
    dl_json_obj_begin(&j, NULL);
    dl_json_str(&j, "task", "factorise");
    dl_json_str(&j, "status", r->stop == DL_OK ? "ok" : r->stop == DL_E_DIVERGED ? "diverged" : "interrupted");
    dl_json_str(&j, "data", source);
    dl_json_int(&j, "rows", r->m);
    dl_json_int(&j, "cols", r->n);
    dl_json_bool(&j, "centered", centred);
    dl_json_int(&j, "rank", cfg->rank);
    dl_json_int(&j, "epochs", cfg->epochs);
    dl_json_int(&j, "epochs_run", r->epochs_run);
    dl_json_num(&j, "lr", cfg->lr);
    dl_json_int(&j, "seed", (long long)cfg->seed);
    dl_json_str(&j, "backend", c->be->name);
    dl_json_str(&j, "device", c->be->device);
    dl_json_num(&j, "sse_gd", r->sse_gd[0]);
    if (r->have_svd) {
        dl_json_num(&j, "sse_svd", r->sse_svd);
        dl_json_num(&j, "sse_svd_reconstruction", r->sse_svd_recon);
        dl_json_num(&j, "gap", r->sse_gd[0] - r->sse_svd);
        dl_json_floats(&j, "singular_values", r->singular_values, (size_t)r->n_sv, 1);
        dl_json_num(&j, "svd_seconds", r->svd_seconds);
    } else {
        dl_json_null(&j, "sse_svd");
        dl_json_null(&j, "singular_values");
    }
    dl_json_num(&j, "train_seconds", r->train_seconds);
    dl_json_floats(&j, "loss_history", r->loss_history, (size_t)r->epochs_run, (size_t)r->seeds);
    dl_json_obj_end(&j);
}

static void write_text(FILE *f, const dl_cmd *c, const char *source, bool centred,
                       const dl_factorise_config *cfg, const dl_factorise_result *r)
{
    fprintf(f, "factorise %s: %dx%d%s, rank %d, %d epochs, lr %g, seed %llu\n", source, r->m,
            r->n, centred ? " (columns centred)" : "", cfg->rank, cfg->epochs, (double)cfg->lr,
            (unsigned long long)cfg->seed);
    fprintf(f, "  backend              %s (%s)\n", c->be->name, c->be->device);
    fprintf(f, "  gradient descent SSE %.6f%s\n", (double)r->sse_gd[0],
            r->epochs_run < cfg->epochs ? "  (stopped early)" : "");
    if (r->have_svd) {
        double gap = r->sse_gd[0] - r->sse_svd;
        fprintf(f, "  SVD rank-%d SSE       %.6f  (reconstruction: %.6f)\n", cfg->rank, r->sse_svd,
                r->sse_svd_recon);
        fprintf(f, "  gap                  %.3e  (%.2e relative)\n", gap,
                r->sse_svd > 0 ? gap / r->sse_svd : 0.0);
        fprintf(f, "  singular values     ");
        int shown = r->n_sv < 8 ? r->n_sv : 8;
        for (int i = 0; i < shown; i++) fprintf(f, " %.4f", (double)r->singular_values[i]);
        fprintf(f, "%s\n", r->n_sv > shown ? " ..." : "");
    }
    fprintf(f, "  training time        %.3f ms  (%d epochs, %.2f us/epoch)\n",
            r->train_seconds * 1e3, r->epochs_run,
            r->epochs_run ? r->train_seconds * 1e6 / r->epochs_run : 0.0);
    if (r->have_svd) fprintf(f, "  SVD time             %.3f ms\n", r->svd_seconds * 1e3);
}

dl_status dl_cmd_factorise(dl_cmd *c)
{
    const dl_options *o = c->opt;
    dl_factorise_config cfg = {
        .rank = o->rank, .epochs = o->given_epochs ? o->epochs : 1000,
        .lr = o->given_lr ? o->lr : 0.01f, .seed = o->seed, .seeds = o->seeds, .svd = o->svd,
        .loop = {.progress = c->progress, .progress_ud = c->progress_ud, .stop = c->stop},
    };
    dl_factorise_result r;
    dl_status st;
    char source[512];
    bool centred = false;
    if (o->synth_m) {
        snprintf(source, sizeof source, "synthetic %dx%d", o->synth_m, o->synth_n);
        DL_TRY(dl_factorise_validate(o->synth_m, o->synth_n, &cfg));
        st = dl_factorise_synthetic(c->be, o->synth_m, o->synth_n, cfg.rank, 0.1f, o->seed ^ 0x5eed,
                                    &cfg, &r);
    } else {
        const char *path = o->data ? o->data : dl_default_data_path();
        snprintf(source, sizeof source, "%s", path);
        dl_dataset d;
        DL_TRY(dl_dataset_load(path, &d));
        if (o->center) dl_dataset_center(&d, NULL);
        centred = o->center;
        st = dl_factorise_validate(d.rows, d.cols, &cfg);
        if (st == DL_OK) st = dl_factorise(c->be, d.x, d.rows, d.cols, &cfg, &r);
        dl_dataset_free(&d);
    }
    if (st != DL_OK && st != DL_E_DIVERGED && st != DL_E_INTERRUPTED) return st;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", dl_errmsg());
    if (c->progress) c->progress(c->progress_ud, NULL);
    write_text(c->text, c, source, centred, &cfg, &r);
    if (o->json) write_json(stdout, c, source, centred, &cfg, &r);
    fflush(stdout);
    dl_factorise_result_free(&r);
    if (st != DL_OK) DL_FAIL(st, "%s", saved);
    return st;
}
