// Helpers the commands share: JSON and human-readable numbers, the metrics table, atomic text
// files and the MPI wrapper of a command body.
#pragma once
#include <functional>
#include <string>

#include "core/evaluator.h"
#include "dist/comm.h"

namespace shardrec::cli {

std::string json_number(double v);  // null for NaN and infinities
std::string json_metrics(const EvalResult& r);
std::string human_time(double seconds);  // 42s, 3m05s, 2h10m
std::string human_rate(double per_second);  // 950, 12.5k, 1.25M
// A readable table of metrics: one row per metric family, one column per cutoff.
void print_metrics(const char* split, const EvalResult& r);
// Writes text to path through a temporary name.
void write_text(const std::string& path, const std::string& text);
// Runs an MPI command body. An error on one rank ends the whole job (MPI_Abort) so that no rank
// waits forever in a collective; a single rank just reports it.
int run_mpi(const std::function<int(dist::Comm&)>& body, int argc, char** argv);

}  // namespace shardrec::cli
