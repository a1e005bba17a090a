/* The data loader: the bundled iris file, the formats and options it
 * accepts (delimiters, header rows, label and feature columns, quoting, line
 * ends, number forms, .npy arrays), the field cases in tests/data/cases, and
 * a clear one-line message naming the line and column for each bad input. */
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

/* --- options, formats and numbers ----------------------------------------- */

static dl_status parse_o(const char *text, const dl_load_options *o, dl_dataset *d)
{
    return dl_dataset_parse_opts(text, strlen(text), "t.csv", o, d);
}

/* Each bad input under options: the status and a message holding want. */
static void bad_o(const char *text, const dl_load_options *o, dl_status code, const char *want)
{
    dl_dataset d;
    dl_status st = parse_o(text, o, &d);
    DL_CHECK(st == code, "'%s' gave %s (%s), wanted %s", text, dl_status_name(st), dl_errmsg(),
             dl_status_name(code));
    DL_CHECK(strstr(dl_errmsg(), want) != NULL, "message \"%s\" lacks \"%s\"", dl_errmsg(), want);
    DL_CHECK(strchr(dl_errmsg(), '\n') == NULL, "message is more than one line");
    if (st == DL_OK) dl_dataset_free(&d);
}

static void test_numbers(void)
{
    static const struct {
        const char *text;
        float value;
    } good[] = {{"+1.4", 1.4f},    {".5", 0.5f},
                {"3.", 3.0f},      {"1e-05", 1e-05f},
                {"1.4E0", 1.4f},   {" 2 ", 2.0f},
                {"\"7\"", 7.0f},   {"\" 8.5 \"", 8.5f},
                {"-0", -0.0f},     {"0e999", 0.0f},
                {"1e-40", 1e-40f}, {"-.25e+1", -2.5f},
                {"000012", 12.0f}, {"3.4028234e38", 3.4028234e38f}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "1,%s\n2,3\n", good[i].text);
        dl_dataset d;
        dl_status st = parse(text, &d);
        DL_CHECK(st == DL_OK, "'%s' refused: %s", good[i].text, dl_errmsg());
        if (st != DL_OK) continue;
        DL_CHECK(d.cols == 2 && d.x[1] == good[i].value, "'%s' read as %g", good[i].text,
                 (double)d.x[1]);
        dl_dataset_free(&d);
    }
    static const struct {
        const char *text, *want;
    } refused[] = {{"0x1A", "hexadecimal"},
                   {"-0X1p3", "hexadecimal"},
                   {"inf", "NaN and Inf"},
                   {"-Infinity", "NaN and Inf"},
                   {"nan", "NaN and Inf"},
                   {"NA", "missing value"},
                   {"N/A", "missing value"},
                   {"?", "missing value"},
                   {"null", "missing value"},
                   {"1_000", "not a number: \"1_000\""},
                   {"1e", "not a number"},
                   {"e5", "not a number"},
                   {".", "not a number"},
                   {"+", "not a number"},
                   {"1.2.3", "not a number"},
                   {"\"1,5\"", "decimal comma"},
                   {"4e-50", "rounds to 0 in float32"},
                   {"1e-400", "rounds to 0 in float32"},
                   {"-7e-46", "rounds to 0 in float32"},
                   {"1e39", "out of float range (float32 holds"},
                   {"3.5e38", "out of float range"},
                   {"1e999", "out of float range"}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "1,2\n3,%s\n", refused[i].text);
        bad(text, strlen(text), "t.csv:2: column 2: ", refused[i].want);
    }
    /* the smallest subnormal and the largest float survive, as numpy reads them */
    dl_dataset d;
    DL_CHECK(parse("1.401298464324817e-45,3.4028235e38\n1,2\n", &d) == DL_OK, "%s", dl_errmsg());
    if (d.x) {
        DL_CHECK(d.x[0] > 0 && d.x[0] == nextafterf(0.0f, 1.0f), "smallest subnormal %g",
                 (double)d.x[0]);
        DL_CHECK(d.x[1] == 3.4028235e38f, "largest float %g", (double)d.x[1]);
    }
    dl_dataset_free(&d);
}

static void test_quoting_and_line_ends(void)
{
    dl_dataset d;
    DL_CHECK(parse("1,\"2\",\"a, \"\"quoted\"\"\"\r\n3,4,\"two\r\nlines\"\r\n5,6,b\r\n", &d) ==
                 DL_OK,
             "RFC 4180: %s", dl_errmsg());
    DL_CHECK(d.rows == 3 && d.cols == 2 && d.n_classes == 3, "%dx%d %d classes", d.rows, d.cols,
             d.n_classes);
    if (d.n_classes == 3) {
        DL_CHECK(!strcmp(d.class_names[0], "a, \"quoted\""), "class 0 '%s'", d.class_names[0]);
        DL_CHECK(!strcmp(d.class_names[1], "two\r\nlines"), "class 1 '%s'", d.class_names[1]);
        DL_CHECK(d.x[1] == 2.0f && d.x[4] == 5.0f, "quoted number");
    }
    dl_dataset_free(&d);
    DL_CHECK(parse("1,2\r3,4\r5,6", &d) == DL_OK && d.rows == 3, "CR-only: %s", dl_errmsg());
    dl_dataset_free(&d);
    DL_CHECK(parse("1,2\n3,4\r\n5,6\r7,8\n\n\r\n", &d) == DL_OK && d.rows == 4, "mixed: %s",
             dl_errmsg());
    dl_dataset_free(&d);
    /* line numbers count CR-only, CRLF and line breaks inside quotes */
    bad("1,2\r3,x\r", 8, "t.csv:2: column 2", "not a number");
    bad("1,2\r\n3,4\r\n5,y\r\n", 15, "t.csv:3: column 2", "not a number");
    const char *ml = "1,2,\"a\nb\"\n3,x,d\n";
    bad(ml, strlen(ml), "t.csv:3: column 2", "not a number");
    bad("1,2\n3,4\"\n", 9, "t.csv:2: column 2", "misplaced quote");
    bad("1,2\n3,\"4\"x\n", 11, "t.csv:2: column 2", "misplaced quote");
    bad("1,2\n3,4\n\"5,6\n7,8\n", 17, "t.csv:3: column 1", "not closed");
    bad("\xff\xfe"
        "1\0,\0"
        "2\0",
        8, "UTF-16", NULL);
}

static void test_bom_and_trailing_delimiter(void)
{
    dl_dataset d;
    DL_CHECK(parse("\xef\xbb\xbfsepal,petal,kind\n1,2,a\n3,4,b\n", &d) == DL_OK, "BOM: %s",
             dl_errmsg());
    DL_CHECK(d.col_names && !strcmp(d.col_names[0], "sepal") && d.labels, "BOM stripped");
    dl_dataset_free(&d);
    DL_CHECK(parse("\xef\xbb\xbf"
                   "1,2\n3,4\n",
                   &d) == DL_OK &&
                 d.x[0] == 1.0f,
             "BOM, no header: %s", dl_errmsg());
    dl_dataset_free(&d);
    bad("\xef\xbb\xbf", 3, "t.csv: the file is empty", NULL);
    DL_CHECK(parse("1,2,a,\n3,4,b,\n5,6,a,\n", &d) == DL_OK, "trailing comma: %s", dl_errmsg());
    DL_CHECK(d.cols == 2 && d.labels && d.n_classes == 2 && !strcmp(d.class_names[0], "a"),
             "trailing comma with labels: %dx%d", d.rows, d.cols);
    dl_dataset_free(&d);
    DL_CHECK(parse("x,y\n1,2,\n3,4,\n", &d) == DL_OK && d.cols == 2 && !d.labels,
             "trailing comma under a header without one: %s", dl_errmsg());
    dl_dataset_free(&d);
    DL_CHECK(parse("x,y,\n1,2\n3,4\n", &d) == DL_OK && d.cols == 2, "trailing comma in header: %s",
             dl_errmsg());
    dl_dataset_free(&d);
    bad("x,y,z\n1,2,\n3,4,\n", 16, "t.csv:2: column 3", "empty field"); /* a named column */
    bad("1,2,\n3,4,\n5,6,9\n", 16, "t.csv:1: column 3", "empty field");
}

static void test_delimiters(void)
{
    static const struct {
        const char *text;
        dl_delimiter given;
        const char *note; /* NULL: no note */
    } cases[] = {
        {"1,2,a\n3,4,b\n", DL_DELIM_AUTO, NULL},
        {"1;2;a\n3;4;b\n", DL_DELIM_AUTO, "separated by ';'"},
        {"1\t2\ta\n3\t4\tb\n", DL_DELIM_AUTO, "separated by tabs"},
        {"1 2  a\n 3\t\t4 b \n", DL_DELIM_AUTO, "runs of spaces and tabs"},
        {"1\t2\t\ta\n3\t\t4\tb\n", DL_DELIM_AUTO, "runs of spaces and tabs"},
        {"1;2;a\n3;4;b\n", DL_DELIM_SEMICOLON, NULL},
        {"1\t2\ta\n3\t4\tb\n", DL_DELIM_TAB, NULL},
        {"1 2 \"a b\"\n3\t4 \"c\td\"\n", DL_DELIM_WHITESPACE, NULL},
        {"1,2,a\n3,4,b\n", DL_DELIM_COMMA, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dl_load_options o = {.delimiter = cases[i].given};
        dl_dataset d;
        dl_status st = parse_o(cases[i].text, &o, &d);
        DL_CHECK(st == DL_OK, "case %zu: %s", i, dl_errmsg());
        if (st != DL_OK) continue;
        DL_CHECK(d.rows == 2 && d.cols == 2 && d.n_classes == 2, "case %zu: %dx%d, %d classes", i,
                 d.rows, d.cols, d.n_classes);
        DL_CHECK(d.x[2] == 3.0f && d.x[3] == 4.0f, "case %zu: values", i);
        if (cases[i].note)
            DL_CHECK(strstr(d.note, cases[i].note) && strstr(d.note, "--delimiter") &&
                         !strncmp(d.note, "t.csv: assumed ", 15),
                     "case %zu: note '%s'", i, d.note);
        else
            DL_CHECK(!d.note[0], "case %zu: unexpected note '%s'", i, d.note);
        dl_dataset_free(&d);
    }
    dl_dataset d;
    dl_load_options ws = {.delimiter = DL_DELIM_WHITESPACE};
    DL_CHECK(parse_o("1 2 \"a b\"\n3\t4 \"c\td\"\n", &ws, &d) == DL_OK && d.n_classes == 2 &&
                 !strcmp(d.class_names[1], "c\td"),
             "whitespace mode keeps a tab inside quotes: %s", dl_errmsg());
    dl_dataset_free(&d);
    /* decimal commas: ';' fits, ',' fits too, and the note says both */
    DL_CHECK(parse("1;2,5;a\n3;4,5;b\n", &d) == DL_E_INPUT && strstr(dl_errmsg(), "decimal comma"),
             "decimal comma: %s", dl_errmsg());
    DL_CHECK(strstr(d.note, "';'") && strstr(d.note, "',' fits too"), "note kept: '%s'", d.note);
    /* a double tab: whitespace runs, so no empty field */
    DL_CHECK(parse("1\t2\n3\t\t4\n", &d) == DL_OK && d.cols == 2 && d.x[3] == 4.0f, "%s",
             dl_errmsg());
    dl_dataset_free(&d);
    dl_load_options tab = {.delimiter = DL_DELIM_TAB};
    bad_o("1\t2\n3\t\t4\n", &tab, DL_E_INPUT,
          "t.csv:2: ragged row: 3 fields, expected 2 like the "
          "first row (fields separated by tabs");
    dl_delimiter v;
    DL_CHECK(dl_delimiter_parse(",", &v) == DL_OK && v == DL_DELIM_COMMA, ",");
    DL_CHECK(dl_delimiter_parse(";", &v) == DL_OK && v == DL_DELIM_SEMICOLON, ";");
    DL_CHECK(dl_delimiter_parse("tab", &v) == DL_OK && v == DL_DELIM_TAB, "tab");
    DL_CHECK(dl_delimiter_parse("space", &v) == DL_OK && v == DL_DELIM_WHITESPACE, "space");
    DL_CHECK(dl_delimiter_parse("auto", &v) == DL_OK && v == DL_DELIM_AUTO, "auto");
    DL_CHECK(dl_delimiter_parse("|", &v) == DL_E_USAGE && strstr(dl_errmsg(), "--delimiter"), "|");
    dl_header_mode h;
    DL_CHECK(dl_header_parse("yes", &h) == DL_OK && h == DL_HEADER_YES, "yes");
    DL_CHECK(dl_header_parse("no", &h) == DL_OK && h == DL_HEADER_NO, "no");
    DL_CHECK(dl_header_parse("true", &h) == DL_E_USAGE && strstr(dl_errmsg(), "--header"), "true");
}

static void test_header(void)
{
    dl_dataset d;
    /* words over numbers: a header, no note */
    DL_CHECK(parse("a,b\n1,2\n3,4\n", &d) == DL_OK && d.rows == 2 && !d.note[0], "%s", d.note);
    dl_dataset_free(&d);
    /* one word above a column of numbers in a mixed row: a header, noted */
    DL_CHECK(parse("150,4,setosa\n5.1,3.5,0\n4.9,3.0,1\n", &d) == DL_OK && d.rows == 2,
             "mixed header: %s", dl_errmsg());
    DL_CHECK(strstr(d.note, "header") && strstr(d.note, "\"setosa\"") && strstr(d.note, "--header"),
             "note '%s'", d.note);
    dl_dataset_free(&d);
    /* pandas' column numbers above fractions: a header, noted */
    DL_CHECK(parse("0,1,2\n1.5,2,3\n4,5,6\n", &d) == DL_OK && d.rows == 2 &&
                 strstr(d.note, "column numbers"),
             "numbered header: %d rows, note '%s'", d.rows, d.note);
    DL_CHECK(d.col_names && !strcmp(d.col_names[2], "2"), "names from the numbered header");
    dl_dataset_free(&d);
    /* the same numbers above whole numbers, or 1..n: data */
    DL_CHECK(parse("0,1,2\n3,4,5\n", &d) == DL_OK && d.rows == 2 && !d.note[0], "0,1,2 data");
    dl_dataset_free(&d);
    DL_CHECK(parse("1,2,3\n4.5,5,6\n", &d) == DL_OK && d.rows == 2 && !d.note[0], "1,2,3 data");
    dl_dataset_free(&d);
    /* a missing-value marker in the first row is not a header */
    DL_CHECK(parse("1,NA\n2,3\n", &d) == DL_E_INPUT && strstr(dl_errmsg(), "t.csv:1: column 2"),
             "NA first: %s", dl_errmsg());
    dl_load_options yes = {.header = DL_HEADER_YES}, no = {.header = DL_HEADER_NO};
    DL_CHECK(parse_o("1,2\n3,4\n5,6\n", &yes, &d) == DL_OK && d.rows == 2 && d.col_names &&
                 !strcmp(d.col_names[1], "2"),
             "--header yes: %s", dl_errmsg());
    dl_dataset_free(&d);
    bad_o("a,b\n1,2\n", &no, DL_E_INPUT, "t.csv:1: column 1: not a number: \"a\"");
    bad_o("a,b\n", &yes, DL_E_INPUT, "no data rows (only a header)");
}

static void test_label_column(void)
{
    dl_dataset d;
    const char *codes = "x,y,target\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n";
    DL_CHECK(parse(codes, &d) == DL_OK && d.cols == 3 && !d.labels, "codes as feature");
    DL_CHECK(strstr(d.note, "whole numbers: 0, 1") && strstr(d.note, "--label-column"), "note '%s'",
             d.note);
    dl_dataset_free(&d);
    /* every value seen, in order, when they are few and the file was read whole */
    DL_CHECK(parse("x,y,t\n1,2,2\n3,4,0\n5,6,1\n7,8,2\n9,1,0\n2,3,1\n", &d) == DL_OK &&
                 strstr(d.note, "(whole numbers: 0, 1, 2) is a feature"),
             "three codes: note '%s'", d.note);
    dl_dataset_free(&d);
    static const char *const same[] = {"target", "3", "last"};
    for (int i = 0; i < 3; i++) {
        dl_load_options o = {.label_column = same[i]};
        DL_CHECK(parse_o(codes, &o, &d) == DL_OK, "%s: %s", same[i], dl_errmsg());
        DL_CHECK(d.cols == 2 && d.labels && d.n_classes == 2 && !strcmp(d.class_names[1], "1") &&
                     d.labels[2] == 0 && !d.note[0] && !strcmp(d.col_names[1], "y"),
                 "--label-column %s", same[i]);
        dl_dataset_free(&d);
    }
    dl_load_options first = {.label_column = "1"};
    DL_CHECK(parse_o("a,1,2\nb,3,4\n", &first, &d) == DL_OK && d.cols == 2 && d.n_classes == 2 &&
                 d.x[0] == 1.0f,
             "label first: %s", dl_errmsg());
    dl_dataset_free(&d);
    dl_load_options none = {.label_column = "none"};
    bad_o("1,2,a\n3,4,b\n", &none, DL_E_INPUT, "t.csv:1: column 3: not a number: \"a\"");
    DL_CHECK(parse_o("1,2,3\n4,5,6\n", &none, &d) == DL_OK && d.cols == 3 && !d.labels, "none");
    dl_dataset_free(&d);
    dl_load_options o0 = {.label_column = "0"}, o4 = {.label_column = "4"},
                    nm = {.label_column = "kind"}, ls = {.label_column = "last"},
                    dash = {.label_column = "1-2"};
    bad_o("1,2,3\n4,5,6\n", &o0, DL_E_USAGE, "--label-column: column 0 is out of range");
    bad_o("1,2,3\n4,5,6\n", &o4, DL_E_USAGE, "column 4 is out of range: t.csv has 3 columns");
    bad_o("1,2,3\n4,5,6\n", &nm, DL_E_USAGE, "'kind' is a name, but t.csv has no header row");
    bad_o("a,b\n1,2\n3,4\n", &nm, DL_E_USAGE, "the header of t.csv has no column named 'kind'");
    bad_o("1\n2\n", &ls, DL_E_USAGE, "--label-column last: t.csv has a single column");
    bad_o("1,2,3\n4,5,6\n", &dash, DL_E_USAGE, "'1-2' is a name");
    DL_CHECK(parse("1,2,x\n3,4,\n", &d) == DL_E_INPUT && strstr(dl_errmsg(), "empty label"),
             "empty label");
}

static void test_columns(void)
{
    static const struct {
        const char *list;
        int cols;
        float first;
    } good[] = {{"1", 1, 1},   {"2-3", 2, 2}, {"3-", 2, 3},      {"-2", 2, 1},
                {"4,1", 2, 1}, {"b,d", 2, 2}, {"1,1,1-2", 2, 1}, {"d,1", 2, 1}};
    const char *text = "a,b,c,d,kind\n1,2,3,4,x\n5,6,7,8,y\n";
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        dl_load_options o = {.columns = good[i].list};
        dl_dataset d;
        dl_status st = parse_o(text, &o, &d);
        DL_CHECK(st == DL_OK, "--columns %s: %s", good[i].list, dl_errmsg());
        if (st != DL_OK) continue;
        DL_CHECK(d.cols == good[i].cols && d.x[0] == good[i].first && d.labels &&
                     d.n_classes == 2 && d.col_names && d.col_names[d.cols - 1],
                 "--columns %s: %d columns, first %g", good[i].list, d.cols, (double)d.x[0]);
        dl_dataset_free(&d);
    }
    /* columns left out may hold anything */
    dl_load_options skip = {.columns = "2"};
    dl_dataset d;
    DL_CHECK(parse_o("id-7,1.5\nid-9,2.5\n", &skip, &d) == DL_OK && d.cols == 1 && d.x[1] == 2.5f &&
                 !d.labels,
             "text column skipped: %s", dl_errmsg());
    dl_dataset_free(&d);
    static const struct {
        const char *list, *want;
    } refused[] = {{"0", "numbered from 1"},
                   {"6", "column 6 is out of range: the file has 5"},
                   {"2-9", "column 9 is out of range"},
                   {"3-1", "'3-1' is an empty range"},
                   {"1,,2", "empty item in '1,,2'"},
                   {"e", "the header has no column named 'e'"},
                   {"5", "selects column 5, which is the label column"},
                   {"kind", "selects column 5, which is the label column"},
                   {"1-5", "selects column 5"},
                   {"", "--columns: empty list"}};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        dl_load_options o = {.columns = refused[i].list};
        bad_o(text, &o, DL_E_USAGE, refused[i].want);
    }
    dl_load_options named = {.columns = "a"};
    bad_o("1,2\n3,4\n", &named, DL_E_USAGE,
          "'a' is not a column number, and the file has no header");
}

/* A .npy file in memory: magic, version, header padded to 64 bytes. */
static size_t npy(unsigned char *buf, int major, const char *dict, const void *data, size_t n)
{
    size_t pre = major == 1 ? 10 : 12, len = strlen(dict);
    size_t hlen = len + 1 + (64 - (pre + len + 1) % 64) % 64;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major, buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) buf[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + pre, dict, len);
    memset(buf + pre + len, ' ', hlen - len - 1);
    buf[pre + hlen - 1] = '\n';
    memcpy(buf + pre + hlen, data, n);
    return pre + hlen + n;
}

static void test_npy(void)
{
    unsigned char buf[1024];
    float f4[6] = {1, 2, 3, 4, 5, 6};
    double f8[6] = {1, 2, 3, 4, 5, 6};
    dl_dataset d;
    size_t n =
        npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4, sizeof f4);
    DL_CHECK(dl_dataset_parse((char *)buf, n, "a.npy", &d) == DL_OK, "f4: %s", dl_errmsg());
    DL_CHECK(d.rows == 3 && d.cols == 2 && d.x[1] == 2 && d.x[2] == 3 && !d.labels &&
                 d.format == DL_FORMAT_NPY && !d.note[0],
             "f4 C order");
    dl_dataset_free(&d);
    n = npy(buf, 2, "{'descr': '<f8', 'fortran_order': True, 'shape': (3, 2), }", f8, sizeof f8);
    DL_CHECK(dl_dataset_parse((char *)buf, n, "a.npy", &d) == DL_OK, "f8 F: %s", dl_errmsg());
    DL_CHECK(d.rows == 3 && d.cols == 2 && d.x[0] == 1 && d.x[1] == 4 && d.x[2] == 2,
             "Fortran order read column by column");
    dl_dataset_free(&d);
    unsigned char be[48];
    for (int i = 0; i < 6; i++)
        for (int b = 0; b < 8; b++) be[i * 8 + b] = ((unsigned char *)&f8[i])[7 - b];
    n = npy(buf, 3, "{\"descr\": \">f8\", \"fortran_order\": False, \"shape\": (3L, 2L)}", be,
            sizeof be);
    DL_CHECK(dl_dataset_parse((char *)buf, n, "a.npy", &d) == DL_OK && d.x[5] == 6,
             "big-endian: %s", dl_errmsg());
    dl_dataset_free(&d);
    dl_load_options cols = {.columns = "2"};
    n = npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4, sizeof f4);
    DL_CHECK(dl_dataset_parse_opts((char *)buf, n, "a.npy", &cols, &d) == DL_OK && d.cols == 1 &&
                 d.x[2] == 6,
             "--columns on .npy: %s", dl_errmsg());
    dl_dataset_free(&d);
    dl_load_options label = {.label_column = "last"}, hdr = {.header = DL_HEADER_NO};
    DL_CHECK(dl_dataset_parse_opts((char *)buf, n, "a.npy", &label, &d) == DL_E_USAGE &&
                 strstr(dl_errmsg(), "no label column"),
             "--label-column on .npy: %s", dl_errmsg());
    DL_CHECK(dl_dataset_parse_opts((char *)buf, n, "a.npy", &hdr, &d) == DL_E_USAGE &&
                 strstr(dl_errmsg(), "--header describes text files"),
             "--header on .npy: %s", dl_errmsg());
    DL_CHECK(dl_dataset_parse((char *)buf, n - 1, "a.npy", &d) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "truncated .npy file: shape (3, 2) of float32 needs 24 bytes"),
             "truncated: %s", dl_errmsg());
    DL_CHECK(dl_dataset_parse((char *)buf, 9, "a.npy", &d) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "truncated .npy file (9 bytes)"),
             "magic only: %s", dl_errmsg());
    static const struct {
        const char *dict, *want;
    } refused[] = {
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }", "dtype '<i4' is not read"},
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (3, 2), }", "dtype '<f2'"},
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2), }", "dtype '|u1'"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", "records"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", "shape (6,) has 1 dimension"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (), }", "shape () has 0 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }", "3 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 6), }", "at least 2 data rows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6, 0), }", "has no columns"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", "8 bytes after"},
        {"{'descr': '<f4', 'fortran_order': False, }", "lacks 'shape'"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (3, 2), }", "damaged .npy header"},
        {"{'descr': '<f4', 'order': False, 'shape': (3, 2), }", "unknown key 'order'"},
        {"['descr', '<f4']", "damaged .npy header"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        n = npy(buf, 1, refused[i].dict, f4, sizeof f4);
        DL_CHECK(dl_dataset_parse((char *)buf, n, "a.npy", &d) == DL_E_INPUT &&
                     strstr(dl_errmsg(), refused[i].want) && strstr(dl_errmsg(), "a.npy"),
                 "%s: %s", refused[i].dict, dl_errmsg());
    }
    float bad4[6] = {1, 2, 3, NAN, 5, 6};
    n = npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", bad4,
            sizeof bad4);
    DL_CHECK(dl_dataset_parse((char *)buf, n, "a.npy", &d) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "a.npy: row 2, column 2: NaN and Inf"),
             "NaN: %s", dl_errmsg());
    double tiny[6] = {1, 2, 3, 4, 1e-50, 6};
    n = npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", tiny,
            sizeof tiny);
    DL_CHECK(dl_dataset_parse((char *)buf, n, "a.npy", &d) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "row 3, column 1: number out of float range"),
             "1e-50: %s", dl_errmsg());
    memcpy(buf, "\x93NUMPY\x04\x00", 8);
    DL_CHECK(dl_dataset_parse((char *)buf, n, "a.npy", &d) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "version 4.0"),
             "version: %s", dl_errmsg());
}

static void test_train_rows(void)
{
    int t = 0;
    DL_CHECK(dl_train_rows(0, 0.0, 150, &t) == DL_OK && t == 100, "150 -> %d", t);
    DL_CHECK(dl_train_rows(0, 0.0, 60, &t) == DL_OK && t == 40, "60 -> %d", t);
    DL_CHECK(dl_train_rows(0, 0.0, 100, &t) == DL_OK && t == 67, "100 -> %d", t);
    DL_CHECK(dl_train_rows(0, 0.0, 2, &t) == DL_OK && t == 1, "2 -> %d", t);
    DL_CHECK(dl_train_rows(0, 0.8, 150, &t) == DL_OK && t == 120, "0.8 -> %d", t);
    DL_CHECK(dl_train_rows(0, 0.29, 100, &t) == DL_OK && t == 29, "0.29 -> %d", t);
    DL_CHECK(dl_train_rows(7, 0.0, 150, &t) == DL_OK && t == 7, "count -> %d", t);
    DL_CHECK(dl_train_rows(0, 0.001, 150, &t) == DL_E_USAGE &&
                 strstr(dl_errmsg(), "--train 0.001 leaves no training rows"),
             "0.001: %s", dl_errmsg());
    DL_CHECK(dl_train_rows(0, 0.999, 150, &t) == DL_E_USAGE &&
                 strstr(dl_errmsg(), "--train 0.999 leaves no validation rows"),
             "0.999: %s", dl_errmsg());
}

/* The field cases kept in tests/data/cases (README there). */
static const char *cases_dir;

static void load_case(const char *file, const dl_load_options *o, dl_dataset *d)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", cases_dir, file);
    dl_status st = dl_dataset_load_opts(path, o, d);
    DL_CHECK(st == DL_OK, "%s: %s", file, dl_errmsg());
    if (st != DL_OK) memset(d, 0, sizeof *d);
}

static void test_field_cases(void)
{
    static const char *const iris_like[] = {"c01_bom_nohdr.csv", "c01b_bom_hdr.csv",
                                            "c02_cr_only.csv", "c03_trailing_comma.csv",
                                            "c15_quoted_comma_label.csv"};
    dl_dataset d, ref;
    if (dl_dataset_load(iris_path, &ref) != DL_OK) return;
    for (size_t i = 0; i < sizeof iris_like / sizeof iris_like[0]; i++) {
        load_case(iris_like[i], NULL, &d);
        DL_CHECK(d.rows == 150 && d.cols == 4 && d.n_classes == 3 && !d.note[0], "%s: %dx%d",
                 iris_like[i], d.rows, d.cols);
        if (d.rows == 150 && d.cols == 4)
            DL_CHECK(!memcmp(d.x, ref.x, sizeof(float) * 600) &&
                         !memcmp(d.labels, ref.labels, sizeof(int32_t) * 150),
                     "%s: the same values and labels as iris", iris_like[i]);
        dl_dataset_free(&d);
    }
    load_case("c01b_bom_hdr.csv", NULL, &d);
    DL_CHECK(d.col_names && !strcmp(d.col_names[0], "sepal_length"), "first name has no BOM");
    dl_dataset_free(&d);
    load_case("c03b_trailing_comma_num.csv", NULL, &d);
    DL_CHECK(d.rows == 150 && d.cols == 4 && !d.labels && !memcmp(d.x, ref.x, sizeof(float) * 600),
             "c03b");
    dl_dataset_free(&d);
    load_case("c04_seeds_tab.txt", NULL, &d);
    DL_CHECK(d.rows == 60 && d.cols == 8 && strstr(d.note, "runs of spaces and tabs"), "c04 %dx%d",
             d.rows, d.cols);
    dl_dataset_free(&d);
    dl_load_options last = {.label_column = "last"};
    load_case("c04_seeds_tab.txt", &last, &d);
    DL_CHECK(d.rows == 60 && d.cols == 7 && d.n_classes == 3 && !strcmp(d.class_names[0], "1"),
             "c04 last");
    dl_dataset_free(&d);
    dl_load_options sk = {.header = DL_HEADER_YES, .label_column = "last"};
    load_case("c05_sklearn_iris.csv", &sk, &d);
    DL_CHECK(d.rows == 150 && d.cols == 4 && d.n_classes == 3 &&
                 !memcmp(d.x, ref.x, sizeof(float) * 600),
             "c05");
    dl_dataset_free(&d);
    dl_load_options target = {.label_column = "target"};
    load_case("c05b_int_labels.csv", &target, &d);
    DL_CHECK(d.rows == 150 && d.cols == 4 && d.n_classes == 3 &&
                 !memcmp(d.labels, ref.labels, sizeof(int32_t) * 150),
             "c05b");
    dl_dataset_free(&d);
    load_case("c15_quoted_comma_label.csv", NULL, &d);
    DL_CHECK(d.n_classes == 3 && !strcmp(d.class_names[0], "Iris setosa, Fisher"), "c15 '%s'",
             d.n_classes ? d.class_names[0] : "");
    dl_dataset_free(&d);
    load_case("c17_small60.csv", NULL, &d);
    DL_CHECK(d.rows == 60 && d.cols == 4, "c17");
    dl_dataset_free(&d);
    load_case("c20_number_formats.csv", NULL, &d);
    static const float row2[4] = {4.9f, 3.0f, 1.4f, 0.2f};
    DL_CHECK(d.rows == 6 && d.cols == 4 && d.n_classes == 3 && d.x[2] == 1.4f && d.x[3] == 0.2f &&
                 !memcmp(d.x + 4, row2, sizeof row2),
             "c20");
    dl_dataset_free(&d);
    char path[1024];
    snprintf(path, sizeof path, "%s/c16_hex_tokens.csv", cases_dir);
    DL_CHECK(dl_dataset_load(path, &d) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "c16_hex_tokens.csv:1: column 5"),
             "c16: %s", dl_errmsg());
    snprintf(path, sizeof path, "%s/c19_na_tokens.csv", cases_dir);
    DL_CHECK(dl_dataset_load(path, &d) == DL_E_INPUT &&
                 strstr(dl_errmsg(), "c19_na_tokens.csv:8: column 3"),
             "c19: %s", dl_errmsg());
    dl_dataset_free(&ref);
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
    cases_dir = argc > 2 ? argv[2] : "tests/data/cases";
    DL_RUN(test_iris);
    DL_RUN(test_formats);
    DL_RUN(test_bad_inputs);
    DL_RUN(test_numbers);
    DL_RUN(test_quoting_and_line_ends);
    DL_RUN(test_bom_and_trailing_delimiter);
    DL_RUN(test_delimiters);
    DL_RUN(test_header);
    DL_RUN(test_label_column);
    DL_RUN(test_columns);
    DL_RUN(test_npy);
    DL_RUN(test_train_rows);
    DL_RUN(test_field_cases);
    DL_RUN(test_missing_file);
    return dl_test_summary("test_data");
}
