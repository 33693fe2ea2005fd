// cxx_streams.cc - C++ iostreams on a file and on std::cout, interleaved with direct writes.
//
// usage: cxx_streams MODE PATH      (stdout is redirected to PATH by the caller)
// MODE ofstream: std::ofstream (app) on PATH, records of varying length.
//      cout:     std::cout (synced with stdio: libstdc++ calls putc/fwrite on
//                the stdout it saw at start-up) mixed with printf and write(1).
//      cout_unsynced: std::ios::sync_with_stdio(false), then as cout.
//      wcout:    std::wcout with wide text.
// A direct write(2) to PATH every 97 records shows where each stream flushed.
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <locale>
#include <string>
#include <unistd.h>

static std::string record(int i)
{
    std::string s = "r" + std::to_string(i) + ":";
    int len = 1 + (i * 7) % 60;
    while ((int)s.size() < len)
        s += char('a' + (i + s.size()) % 26);
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    std::string mode = argv[1];
    const char *path = argv[2];
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0)
        return 1;
    if (mode == "cout_unsynced")
        std::ios::sync_with_stdio(false);
    if (mode == "wcout") {
        std::setlocale(LC_ALL, "C.UTF-8");
        for (int i = 0; i < 2000; i++)
            std::wcout << L"w\u00e9" << i << (i % 5 ? L" " : L"\n");
        return 0;
    }
    std::ofstream of;
    if (mode == "ofstream") {
        of.open(path, std::ios::app);
        if (!of)
            return 1;
    }
    for (int i = 0; i < 3000; i++) {
        if (i % 97 == 0) {
            std::string d = "<direct " + std::to_string(i) + ">\n";
            if (write(fd, d.data(), d.size()) != (ssize_t)d.size())
                return 1;
        }
        std::string r = record(i);
        if (mode == "ofstream") {
            of << r << (i % 5 ? ' ' : '\n');
            if (i % 500 == 0)
                of << std::flush;
            if (i % 1000 == 0)
                of << std::endl;
        } else {
            std::cout << r << (i % 5 ? ' ' : '\n');
            if (i % 7 == 0)
                std::printf("[printf %d]", i);
            if (i % 500 == 0)
                std::cout << std::endl;
        }
    }
    return 0;
}
