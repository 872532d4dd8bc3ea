// Helpers the commands share: JSON and human-readable numbers, the metrics table, atomic text
// files and the MPI wrapper of a command body.
#pragma once
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "base/log.h"
#include "core/evaluator.h"
#include "dist/comm.h"

namespace shardrec::cli {

// A JSON string literal of s (quotes, backslashes and control characters escaped).
std::string json_str(std::string_view s);
std::string json_number(double v);  // null for NaN and infinities
// Metrics as JSON; those of an empty split are null.
std::string json_metrics(const EvalResult& r);
// Whether the split had no rows to evaluate (no user, no defined metric).
bool empty_split(const EvalResult& r);
// human_time and human_rate: base/log.h (progress lines share them).
// A readable table of metrics: one row per metric family, one column per cutoff; "no rows" for an
// empty split.
void print_metrics(const char* split, const EvalResult& r, std::FILE* to = stdout);
// A command's text output: "-" is standard output, anything else a file written atomically
// (base/atomic_file.h).
void write_output(const std::string& path, const std::string& text);
// Every rank opens the input files alone and reads their headers (the dataset; the parameters file
// when given); a missing or foreign file is then one agreed error, before any collective read.
void check_inputs(dist::Comm& comm, const std::string& data, const std::string& params = {});
// --log-level debug: rank 0 prints every rank's part of the data (users, rows per split).
// Collective when log is at debug (every rank has the same level: the same command line).
void debug_partition(const Log& log, const io::DataShard& data, dist::Comm& comm);

// Runs an MPI command body; an error exits 1 with its message printed once. An error the ranks
// agreed on (AgreedError: every rank has it) is printed by rank 0 and every rank stops cleanly.
// Any other error: the failed rank tells the others through the communicator, which hear it in
// the collective they wait in; each message is printed once (by the lowest rank that has it,
// naming the ranks unless all have it), a rank stopped by another's failure prints one
// `stopped (rank R of N): ...` line and exits kExitRankFailed (4), and a rank that does not
// answer within 10 s (busy in parallel HDF5, or --comm-timeout 0, whose blocking collectives
// cannot poll) is ended by MPI_Abort. A collective that does not complete within
// comm_timeout seconds (a rank or a link is gone) ends the job with exit code 124 and a message
// naming the collective, the rank and what the ranks were doing; comm_timeout < 0 takes
// default_comm_timeout(); 0 waits for ever.
// SHARDREC_COMM_TIMEOUT from the environment, else 600 seconds.
double default_comm_timeout();
int run_mpi(const std::function<int(dist::Comm&)>& body, int argc, char** argv, double comm_timeout = -1);
// main: an error of an MPI command before run_mpi (options, config) with exit code `code`. Under
// an MPI launcher the ranks agree on it as in run_mpi, so that it prints once; returns the exit
// code.
int report_error(bool mpi_command, int code, const std::string& what, int argc, char** argv);

}  // namespace shardrec::cli
