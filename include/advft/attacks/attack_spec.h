#pragma once
// Attack specs as users write them: "fgsm", "pgd:steps=20,eps=8/255", "pgd:norm=l2,eps=0.5",
// "apgd", "apgd_t:targets=3", "fab", "apgd:eot=20", "autoattack:version=plus".
#include <string>
#include <vector>

#include "advft/config/config.h"

namespace advft::attacks {

/// Options of one attack (the same struct configs hold).
using AttackOptions = config::AttackConfig;

/// A parsed attack with the name shown in tables and JSON.
struct NamedAttack {
  std::string name;  ///< e.g. "PGD-20 Linf eps=8/255"
  AttackOptions options;
};

/// Parses `kind[:key=value,...]` over `base` (the run's training attack): keys not given keep
/// base's values, except that a new eps without a step_size scales the step size with it,
/// "fgsm" defaults to one step of size eps without random start, the loss is "ce" unless given
/// (apgd_dlr and apgd_t: "dlr"), and the apgd kinds take AutoAttack's 100 steps, 1 restart and
/// 9 targets. `where` names the source (a flag or config key) in ConfigError messages.
NamedAttack parse_attack_spec(const std::string& spec, const AttackOptions& base,
                              const std::string& where);

/// The attacks one spec names: parse_attack_spec's one, or for
/// "autoattack[:eps=E,norm=N,version=V]" those of AutoAttack's version V (over `base`'s eps and
/// norm unless given), in AutoAttack's order: "standard" (the default) APGD-CE, APGD-T, FAB-T and
/// Square at their defaults; "plus" APGD-CE, APGD-DLR and FAB with 5 restarts each, Square,
/// APGD-T and FAB-T; "rand" APGD-CE and APGD-DLR averaging 20 forwards per step (eot=20).
std::vector<NamedAttack> parse_attack_specs(const std::string& spec, const AttackOptions& base,
                                            const std::string& where);

/// Short human name of an attack ("PGD-20 Linf eps=8/255 step=2/255").
std::string describe_attack(const AttackOptions& options);

/// `attack` as it runs on a model with `classes` outputs: a targeted attack's targets cut to
/// classes - 1, as the attack itself would cut them, and its name with them. ConfigError when it
/// cannot run there (the DLR loss needs 3 classes, targeted DLR 4): the check its loss makes when
/// the attack's turn comes, made before an evaluation's first attack instead.
NamedAttack fit_attack_to_model(NamedAttack attack, int64_t classes);

/// A value in pixel units written as k/255 when it is one, else as a plain number.
std::string format_pixels(double value);

}  // namespace advft::attacks
