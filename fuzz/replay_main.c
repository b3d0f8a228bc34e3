/* replay_main.c: runs a fuzz target over every file of its corpus, for builds without
 * libFuzzer, so that ctest checks every committed input on every build. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *buf;
    size_t got;

    if (!f || fstat(fileno(f), &st) != 0) {
        perror(path);
        if (f)
            fclose(f);
        return -1;
    }
    buf = malloc(st.st_size ? (size_t)st.st_size : 1);
    got = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        fprintf(stderr, "%s: short read\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, got);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, failed = 0;

    for (int i = 1; i < argc; i++) {
        DIR *dir = opendir(argv[i]);
        struct dirent *ent;

        if (!dir) {
            perror(argv[i]);
            return 1;
        }
        while ((ent = readdir(dir)) != NULL) {
            char path[4096];
            if (ent->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", argv[i], ent->d_name);
            failed += replay_file(path) != 0;
            files++;
        }
        closedir(dir);
    }
    printf("replayed %d inputs, %d unreadable\n", files, failed);
    /* An empty corpus means the target is not exercised at all: that is a failure. */
    return files == 0 || failed != 0;
}
