/* The data loader: the bundled iris file, the formats it accepts, and a
 * clear DL_E_INPUT message naming the line and column for each bad input. */
#include <string.h>

#include "dl_test.h"
#include "dlab/data.h"

static const char *iris_path;

static void test_iris(void)
{
    dl_dataset d;
    DL_CHECK(dl_dataset_load(iris_path, &d) == DL_OK, "load: %s", dl_errmsg());
    DL_CHECK(d.rows == 150 && d.cols == 4, "iris is %dx%d", d.rows, d.cols);
    DL_CHECK(d.labels && d.n_classes == 3, "%d classes", d.n_classes);
    DL_CHECK(d.n_classes == 3 && !strcmp(d.class_names[0], "Iris-setosa") &&
                 !strcmp(d.class_names[1], "Iris-versicolor") &&
                 !strcmp(d.class_names[2], "Iris-virginica"),
             "class names in order of appearance");
    DL_CHECK(d.labels[0] == 0 && d.labels[50] == 1 && d.labels[149] == 2, "labels");
    DL_CHECK(d.x[0] == 5.1f && d.x[3] == 0.2f && d.x[149 * 4 + 2] == 5.1f, "values");
    /* The UCI file's rows 35 and 38 (1-based) read 4.9,3.1,1.5,0.1. */
    DL_CHECK(d.x[34 * 4 + 3] == 0.1f && d.x[37 * 4 + 1] == 3.1f, "UCI rows 35 and 38");
    double means[4];
    dl_dataset_center(&d, means);
    DL_CHECK_NEAR(means[0], 5.843333, 1e-5, "mean sepal length");
    double s = 0;
    for (int r = 0; r < 150; r++) s += d.x[r * 4];
    DL_CHECK_NEAR(s, 0.0, 1e-4, "centred column sum");
    dl_dataset_free(&d);
}

static dl_status parse(const char *text, dl_dataset *d)
{
    return dl_dataset_parse(text, strlen(text), "t.csv", d);
}

static void test_formats(void)
{
    dl_dataset d;
    DL_CHECK(parse("a,b,c\n1,2,3\n4,5,6\n", &d) == DL_OK, "header csv: %s", dl_errmsg());
    DL_CHECK(d.rows == 2 && d.cols == 3 && !d.labels && d.col_names && !strcmp(d.col_names[2], "c"),
             "header csv shape");
    dl_dataset_free(&d);
    DL_CHECK(parse("1,2\r\n3,4\r\n\r\n\n", &d) == DL_OK, "CRLF and trailing blank lines: %s",
             dl_errmsg());
    DL_CHECK(d.rows == 2 && d.cols == 2, "CRLF shape %dx%d", d.rows, d.cols);
    dl_dataset_free(&d);
    DL_CHECK(parse(" 1.5e0 , -2 ,\"cat\"\n3,4, dog \n", &d) == DL_OK, "spaces, quotes, labels: %s",
             dl_errmsg());
    DL_CHECK(d.rows == 2 && d.cols == 2 && d.n_classes == 2 && !strcmp(d.class_names[1], "dog") &&
                 d.x[0] == 1.5f,
             "label parse");
    dl_dataset_free(&d);
    DL_CHECK(parse("x,y,label\n1,2,a\n3,4,b\n", &d) == DL_OK, "header with label: %s", dl_errmsg());
    DL_CHECK(d.cols == 2 && d.labels && d.n_classes == 2, "header with label shape");
    dl_dataset_free(&d);
}

/* Each bad input: DL_E_INPUT and a message holding the expected pieces. */
static void bad(const char *text, size_t len, const char *want1, const char *want2)
{
    dl_dataset d;
    dl_status st = dl_dataset_parse(text, len, "t.csv", &d);
    DL_CHECK(st == DL_E_INPUT, "accepted bad input (wanted \"%s\")", want1);
    DL_CHECK(strstr(dl_errmsg(), want1) != NULL, "message \"%s\" lacks \"%s\"", dl_errmsg(), want1);
    if (want2)
        DL_CHECK(strstr(dl_errmsg(), want2) != NULL, "message \"%s\" lacks \"%s\"", dl_errmsg(),
                 want2);
    DL_CHECK(strchr(dl_errmsg(), '\n') == NULL, "message is more than one line");
}

static void test_bad_inputs(void)
{
    bad("", 0, "t.csv: the file is empty", NULL);
    bad("\n \n", 3, "no data rows", NULL);
    bad("1,2\n3,4,5\n", 10, "t.csv:2:", "ragged row");
    bad("1,2\n3\n", 6, "t.csv:2:", "ragged row");
    bad("1,2\n3,abc\n", 10, "t.csv:2: column 2", "not a number");
    bad("1,2\n3,\n4,5\n", 11, "t.csv:2: column 2", "empty field");
    bad("1,nan\n3,4\n", 10, "t.csv:1: column 2", "NaN and Inf");
    bad("1,2\ninf,4\n", 10, "t.csv:2: column 1", "NaN and Inf");
    bad("1,2\n3,1e39\n", 11, "t.csv:2: column 2", "out of float range");
    bad("1,2\n3,1e999\n", 12, "t.csv:2: column 2", "out of float range");
    bad("1,2,a\n", 6, "at least 2 data rows", NULL);
    bad("a,b\n", 4, "no data rows", NULL);
    bad("1,2\n3,4\0\x01\x02", 11, "binary data", "t.csv:2");
    bad("a,b,c\n1,2\n3,4\n", 14, "t.csv:2:", "header row has 3");
    bad("1,2,x\n3,4,\n", 11, "t.csv:2: column 3", "empty label");
    bad("1,2,x\n3,4,y,z\n", 14, "ragged", NULL);
}

static void test_missing_file(void)
{
    dl_dataset d;
    DL_CHECK(dl_dataset_load("/nonexistent/iris.data", &d) == DL_E_INPUT, "missing file accepted");
    DL_CHECK(strstr(dl_errmsg(), "cannot open") != NULL, "message: %s", dl_errmsg());
    DL_CHECK(dl_dataset_load("/", &d) == DL_E_INPUT, "a directory accepted");
}

int main(int argc, char **argv)
{
    iris_path = argc > 1 ? argv[1] : "data/iris.data";
    DL_RUN(test_iris);
    DL_RUN(test_formats);
    DL_RUN(test_bad_inputs);
    DL_RUN(test_missing_file);
    return dl_test_summary("test_data");
}
