/* dlab-gpu --task predict: apply a classifier saved by mlp --out (model.json)
 * to a data file on the chosen backend, report the accuracy and the
 * confusion matrix when the file has labels, and with --out DIR write
 * predictions.csv and the summary. */
#include "dlab/cmd.h"
#include "dlab/data.h"
#include "dlab/json.h"
#include "dlab/model_io.h"
#include "dlab/predict.h"
#include "dlab/predictions_out.h"
#include "dlab/report.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const dl_cmd *c;
    const dl_model *m;
    const dl_dataset *d;
    const dl_predictions *p;
    const int32_t *labels; /* rows, in the model's class order; NULL without labels */
    const int *confusion;  /* classes x classes, NULL without labels */
    int correct;
    int *predicted; /* classes: rows predicted as each class */
    const dl_out *out;
} report;

static dl_status write_json(FILE *f, const void *ctx)
{
    const report *rep = ctx;
    const dl_options *o = rep->c->opt;
    const dl_model *m = rep->m;
    dl_json j;
    dl_json_init(&j, f, false);
    dl_json_obj_begin(&j, NULL);
    dl_json_str(&j, "task", "predict");
    dl_json_str(&j, "status", "ok");
    dl_json_str(&j, "model", o->model);
    dl_json_str(&j, "data", o->data);
    dl_json_str(&j, "backend", rep->c->be->name);
    dl_json_str(&j, "device", rep->c->be->device);
    dl_json_int(&j, "rows", rep->d->rows);
    dl_json_int(&j, "features", m->features);
    dl_json_int(&j, "hidden", m->hidden);
    dl_json_int(&j, "classes", m->classes);
    dl_json_arr_begin(&j, "class_names");
    for (int k = 0; k < m->classes; k++) dl_json_str(&j, NULL, m->class_names[k]);
    dl_json_arr_end(&j);
    dl_json_bool(&j, "labelled", rep->labels != NULL);
    if (rep->labels) {
        dl_json_num(&j, "accuracy", (double)rep->correct / rep->d->rows);
        dl_json_int(&j, "correct", rep->correct);
    } else {
        dl_json_null(&j, "accuracy");
        dl_json_null(&j, "correct");
    }
    dl_json_arr_begin(&j, "predicted_counts");
    for (int k = 0; k < m->classes; k++) dl_json_int(&j, NULL, rep->predicted[k]);
    dl_json_arr_end(&j);
    dl_json_confusion(&j, "confusion_matrix", rep->confusion, m->classes);
    dl_out_json(&j, rep->out);
    dl_json_obj_end(&j);
    return DL_OK;
}

static void write_text(FILE *f, const report *rep)
{
    const dl_options *o = rep->c->opt;
    const dl_model *m = rep->m;
    fprintf(f, "predict %s with %s: %d rows, %d-%d-%d model\n", o->data, o->model, rep->d->rows,
            m->features, m->hidden, m->classes);
    fprintf(f, "  backend              %s (%s)\n", rep->c->be->name, rep->c->be->device);
    if (rep->labels)
        fprintf(f, "  accuracy             %.4f  (%d of %d rows)\n",
                (double)rep->correct / rep->d->rows, rep->correct, rep->d->rows);
    else
        fprintf(f, "  accuracy             not measured: the data has no label column\n");
    fprintf(f, "  predicted           ");
    for (int k = 0; k < m->classes; k++)
        fprintf(f, " %s %d%s", m->class_names[k], rep->predicted[k],
                k + 1 < m->classes ? "," : "\n");
    if (rep->confusion)
        dl_print_confusion(f, "confusion matrix", rep->confusion, m->classes, m->class_names);
    dl_out_text(f, rep->out);
}

dl_status dl_cmd_predict(dl_cmd *c)
{
    const dl_options *o = c->opt;
    dl_model m;
    DL_TRY(dl_model_read(o->model, &m));
    dl_dataset d;
    /* The loader's options as for training (--delimiter, --header,
     * --label-column, --columns); the labels are optional here. */
    dl_status st = dl_cmd_load_data(c, o->data, false, &d);
    if (st != DL_OK) {
        dl_model_free(&m);
        return st;
    }
    int32_t *labels = NULL;
    int *confusion = NULL, *predicted = calloc((size_t)m.classes, sizeof(int));
    if (d.labels) {
        labels = malloc(sizeof(int32_t) * (size_t)d.rows);
        confusion = calloc((size_t)m.classes * (size_t)m.classes, sizeof(int));
    }
    if (!predicted || (d.labels && (!labels || !confusion)))
        st = DL_FAIL(DL_E_MEMORY, "out of host memory for %d rows", d.rows);
    if (st == DL_OK) st = dl_model_check_data(&m, o->model, &d, o->data, labels);
    dl_out out;
    dl_out_init(&out, o->out, dl_out_names_predict);
    dl_out_keep(&out, "--model", o->model); /* predictions beside their model keep it */
    dl_out_keep(&out, "--data", o->data);
    if (st == DL_OK) st = dl_out_prepare(&out, o->force);
    dl_predictions p = {0};
    if (st == DL_OK) {
        dl_mlp_model view = dl_model_view(&m);
        st = dl_mlp_predict(c->be, &view, d.x, d.rows, &p);
    }
    /* Non-finite outputs name no class, so there is no accuracy, count or
     * predictions.csv to report for those rows; a partial report would read
     * as a complete one, so nothing is written. */
    if (st == DL_OK && p.non_finite > 0)
        st = DL_FAIL_PLAIN(DL_E_RUNTIME,
                           "%s: %d of %d rows of %s have non-finite outputs: the model's weights "
                           "overflow float32; nothing was predicted",
                           o->model, p.non_finite, d.rows, o->data);
    report rep = {.c = c,
                  .m = &m,
                  .d = &d,
                  .p = &p,
                  .labels = labels,
                  .confusion = confusion,
                  .predicted = predicted,
                  .out = &out};
    if (st == DL_OK) {
        for (int i = 0; i < d.rows; i++) predicted[p.predicted[i]]++;
        if (labels) {
            dl_confusion_add(&p, labels, NULL, d.rows, confusion);
            for (int k = 0; k < m.classes; k++) rep.correct += confusion[(size_t)k * m.classes + k];
        }
        if (out.dir) {
            dl_predictions_csv csv = {.p = &p, .class_names = m.class_names, .labels = labels};
            st = dl_out_write(&out, "predictions.csv", dl_predictions_csv_write, &csv);
            if (st == DL_OK) st = dl_out_summary(&out, write_json, &rep);
        }
        if (c->progress) c->progress(c->progress_ud, NULL);
        write_text(c->text, &rep);
        if (o->json) write_json(stdout, &rep);
        fflush(stdout);
    }
    if (st != DL_OK) dl_out_discard(&out); /* empty only when nothing was written */
    dl_predictions_free(&p);
    free(labels), free(confusion), free(predicted);
    dl_dataset_free(&d);
    dl_model_free(&m);
    return st;
}
