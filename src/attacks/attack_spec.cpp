#include "advft/attacks/attack_spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "advft/config/load.h"
#include "advft/error.h"
#include "shared.h"

namespace advft::attacks {

std::string format_pixels(double value) {
  double in_255 = value * 255.0;
  std::ostringstream out;
  if (value != 0.0 && std::abs(in_255) < 1e12 && std::abs(in_255 - std::round(in_255)) < 1e-9) {
    out << std::llround(in_255) << "/255";
  } else {
    out << value;
  }
  return out.str();
}

namespace {

std::string upper(std::string text) {
  for (char& c : text)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

bool is_apgd(const std::string& kind) {
  return kind == "apgd" || kind == "apgd_t";
}

// The attacks that choose their own steps (or take none): no step_size, no random_start.
bool is_fab(const std::string& kind) {
  return kind == "fab" || kind == "fab_t";
}

bool sets_own_steps(const std::string& kind) {
  return is_apgd(kind) || kind == "square" || is_fab(kind);
}

bool is_targeted(const std::string& kind) {
  return kind == "apgd_t" || kind == "fab_t";
}

// The attacks whose loss is a choice: the others follow a logit difference (FAB) or the
// targeted DLR (APGD-T).
bool takes_loss(const std::string& kind) {
  return !is_targeted(kind) && !is_fab(kind);
}

// Why an attack that sets its own steps refuses step_size and random_start.
std::string own_steps_reason(const std::string& kind) {
  if (kind == "square") {
    return "Square has no step size and always starts from its own random pattern (it searches "
           "over windows of the ball's edge)";
  }
  if (is_fab(kind)) {
    return std::string(kind == "fab" ? "FAB" : "FAB-T") +
           " has no step size (it projects onto the linearized boundary) and starts from the "
           "clean image, then from random points for later restarts";
  }
  return "APGD chooses its own step size (2 eps, halved as it goes) and always starts at a "
         "random point";
}

bool parse_bool(const std::string& text, const std::string& context) {
  if (text == "true" || text == "1" || text == "on") return true;
  if (text == "false" || text == "0" || text == "off") return false;
  throw ConfigError(context + ": expected true or false, got \"" + text + "\"");
}

// One name per key, whichever alias was written.
std::string canonical_key(const std::string& key) {
  if (key == "alpha" || key == "step") return "step_size";
  if (key == "rs") return "random_start";
  if (key == "eot_iter") return "eot";
  return key;
}

int64_t parse_int(const std::string& text, const std::string& context) {
  std::size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) {
    throw ConfigError(context + ": expected an integer, got \"" + text + "\"");
  }
  return value;
}

}  // namespace

std::string describe_attack(const AttackOptions& o) {
  std::ostringstream out;
  if (o.kind == "fgsm") {
    out << (o.random_start ? "FGSM-RS" : "FGSM");
  } else if (o.kind == "apgd_t") {
    out << "APGD-T-" << o.steps;
  } else if (o.kind == "apgd") {
    out << "APGD-" << upper(o.loss) << "-" << o.steps;
  } else if (o.kind == "square") {
    out << "Square-" << o.steps;
  } else if (o.kind == "fab_t") {
    out << "FAB-T-" << o.steps;
  } else if (o.kind == "fab") {
    out << "FAB-" << o.steps;
  } else {
    out << "PGD-" << o.steps;
  }
  if (o.kind != "fgsm" && o.restarts > 1) out << "x" << o.restarts;
  // The loss where it is a choice and not the attack's usual one.
  const char* usual_loss = o.kind == "square" ? "cw" : "ce";
  if (takes_loss(o.kind) && o.kind != "apgd" && o.loss != usual_loss) out << " " << upper(o.loss);
  if (o.eot > 1) out << " EOT-" << o.eot;
  // Linf radii are pixel levels (8/255); an L2 radius is a length over all pixels (0.5, 2).
  const auto radius = [&o](double value) {
    std::ostringstream text;
    text << value;
    return o.norm == "l2" ? text.str() : format_pixels(value);
  };
  out << (o.norm == "l2" ? " L2" : " Linf") << " eps=" << radius(o.eps);
  if (is_targeted(o.kind)) out << " targets=" << o.targets;
  if (!sets_own_steps(o.kind) && (o.kind != "fgsm" || o.random_start))
    out << " step=" << radius(o.step_size);
  return out.str();
}

namespace {

// AutoAttack's versions (its autoattack.py), in its order: each attack runs on what the earlier
// ones left robust. "standard" is the leaderboard's; "plus" adds APGD-DLR and untargeted FAB and
// restarts them (5 each); "rand", for randomized defenses, averages APGD's gradients over 20
// forwards (expectation over transformation).
std::vector<std::string> autoattack_version(const std::string& version,
                                            const std::string& context) {
  if (version == "standard") return {"apgd", "apgd_t", "fab_t", "square"};
  if (version == "plus") {
    return {
        "apgd:restarts=5", "apgd_dlr:restarts=5", "fab:restarts=5", "square", "apgd_t", "fab_t"};
  }
  if (version == "rand") return {"apgd:eot=20", "apgd_dlr:eot=20"};
  throw ConfigError(context + ": version must be standard, plus or rand, got \"" + version + "\"");
}

}  // namespace

std::vector<NamedAttack> parse_attack_specs(const std::string& spec, const AttackOptions& base,
                                            const std::string& where) {
  const auto colon = spec.find(':');
  if (spec.substr(0, colon) != "autoattack") return {parse_attack_spec(spec, base, where)};
  const std::string context = where + " \"" + spec + "\"";
  std::string ball;  // ",eps=...,norm=...": what every attack of the version takes
  std::string version = "standard";
  std::stringstream items(colon == std::string::npos ? "" : spec.substr(colon + 1));
  std::string item;
  while (std::getline(items, item, ',')) {
    const auto eq = item.find('=');
    const std::string key = item.substr(0, eq);
    if (key == "version" && eq == std::string::npos) {
      throw ConfigError(context + ": expected version=standard, plus or rand");
    } else if (key == "version") {
      version = item.substr(eq + 1);
    } else if (key == "eps" || key == "norm") {
      ball += "," + item;
    } else {
      throw ConfigError(context + ": autoattack takes eps, norm and version only (got \"" + key +
                        "\"); to change an attack's settings, give them one by one: apgd, " +
                        "apgd_t, fab_t, square");
    }
  }
  std::vector<NamedAttack> out;
  for (const std::string& member : autoattack_version(version, context)) {
    const bool has_options = member.find(':') != std::string::npos;
    const std::string member_spec =
        ball.empty() ? member : member + (has_options ? ball : ":" + ball.substr(1));
    out.push_back(parse_attack_spec(member_spec, base, context + ":"));
  }
  return out;
}

NamedAttack parse_attack_spec(const std::string& spec, const AttackOptions& base,
                              const std::string& where) {
  const std::string context = where + " \"" + spec + "\"";
  auto colon = spec.find(':');
  std::string kind = spec.substr(0, colon);
  AttackOptions o = base;
  o.loss = "ce";  // not the training attack's: evaluations compare on the standard loss
  o.eot = 1;      // nor its gradient averaging: given per attack where the model is random
  // An APGD training attack's step_size records its first step, 2 eps, no PGD step: PGD over
  // it takes the usual eps / 4.
  const double base_step = is_apgd(base.kind) ? base.eps / 4.0 : base.step_size;
  o.step_size = base_step;
  if (kind == "fgsm") {
    o.kind = "fgsm";
    o.steps = 1;
    o.restarts = 1;
    o.random_start = false;
    o.step_size = base.eps;
  } else if (kind == "pgd" || kind == "pgd_linf" || kind == "pgd-linf") {
    o.kind = "pgd";
    o.norm = "linf";
  } else if (kind == "pgd_l2" || kind == "pgd-l2") {
    o.kind = "pgd";
    o.norm = "l2";
  } else if (kind == "apgd" || kind == "apgd_ce" || kind == "apgd-ce" || kind == "apgd_dlr" ||
             kind == "apgd-dlr" || kind == "apgd_t" || kind == "apgd-t") {
    // AutoAttack's standard settings: 100 iterations, one restart, nine target classes.
    const bool targeted = kind == "apgd_t" || kind == "apgd-t";
    o.kind = targeted ? "apgd_t" : "apgd";
    if (targeted || kind == "apgd_dlr" || kind == "apgd-dlr") o.loss = "dlr";
    o.steps = 100;
    o.restarts = 1;
    o.targets = 9;
    o.random_start = true;
  } else if (kind == "fab_t" || kind == "fab-t" || kind == "fab") {
    // AutoAttack's FAB-T and FAB: 100 steps, one restart, (FAB-T) nine target classes.
    o.kind = kind == "fab" ? "fab" : "fab_t";
    o.steps = 100;
    o.restarts = 1;
    o.targets = 9;
    o.random_start = true;
  } else if (kind == "square") {
    // AutoAttack's: 5000 queries, one restart, the margin loss.
    o.kind = "square";
    o.loss = "cw";
    o.steps = 5000;
    o.restarts = 1;
    o.random_start = true;
  } else {
    throw ConfigError(context + ": unknown attack \"" + kind +
                      "\" (known: fgsm, pgd, pgd_l2, apgd, apgd_dlr, apgd_t, fab, fab_t, square)");
  }
  bool eps_given = false;
  bool step_given = false;
  if (colon != std::string::npos) {
    std::stringstream items(spec.substr(colon + 1));
    std::string item;
    std::vector<std::string> given;  // each key once, by its canonical name
    while (std::getline(items, item, ',')) {
      auto eq = item.find('=');
      if (eq == std::string::npos) {
        throw ConfigError(context + ": expected key=value, got \"" + item + "\"");
      }
      std::string key = item.substr(0, eq);
      std::string value = item.substr(eq + 1);
      std::string key_context = context + " " + key;
      const std::string canonical = canonical_key(key);
      if (std::find(given.begin(), given.end(), canonical) != given.end())
        throw ConfigError(key_context + ": given twice; keep one");
      given.push_back(canonical);
      if (o.kind == "fgsm" && (key == "steps" || key == "restarts")) {
        throw ConfigError(key_context + ": FGSM is one step from one start; for more use " +
                          "pgd:steps=N,restarts=R");
      }
      if (sets_own_steps(o.kind) && (key == "step_size" || key == "alpha" || key == "step" ||
                                     key == "random_start" || key == "rs")) {
        throw ConfigError(key_context + ": " + own_steps_reason(o.kind) + "; drop " + key);
      }
      if (key == "eps") {
        o.eps = config::parse_number(value, key_context);
        eps_given = true;
      } else if (key == "step_size" || key == "alpha" || key == "step") {
        o.step_size = config::parse_number(value, key_context);
        step_given = true;
      } else if (key == "steps") {
        o.steps = parse_int(value, key_context);
      } else if (key == "restarts") {
        o.restarts = parse_int(value, key_context);
      } else if (key == "norm") {
        o.norm = value;
      } else if (key == "random_start" || key == "rs") {
        o.random_start = parse_bool(value, key_context);
      } else if (key == "loss" && takes_loss(o.kind)) {
        o.loss = value;
      } else if (key == "loss") {
        throw ConfigError(key_context + ": " + o.kind +
                          (is_fab(o.kind) ? " follows the logit difference to the boundary"
                                          : " always ascends the targeted DLR loss") +
                          "; drop loss or use apgd:loss=" + value);
      } else if ((key == "eot" || key == "eot_iter") && is_apgd(o.kind)) {
        o.eot = parse_int(value, key_context);
      } else if (key == "eot" || key == "eot_iter") {
        throw ConfigError(key_context +
                          ": only the apgd kinds average their gradients over several forwards "
                          "(for randomized models)");
      } else if (key == "targets" && is_targeted(o.kind)) {
        o.targets = parse_int(value, key_context);
      } else if (key == "targets") {
        throw ConfigError(key_context + ": only apgd_t and fab_t have target classes");
      } else {
        throw ConfigError(context + ": unknown option \"" + key +
                          "\" (known: eps, step_size, steps, restarts, norm, random_start, " +
                          "loss, targets, eot)");
      }
    }
  }
  if (is_apgd(o.kind)) {
    o.step_size = 2.0 * o.eps;  // recorded as APGD's first step
  } else if (o.kind == "square" || is_fab(o.kind)) {
    o.step_size = 0.0;  // none: Square sets windows to the ball's edge, FAB projects
  } else if (o.kind == "fgsm" && !step_given) {
    // One step, whatever the eps: to the ball's edge, or from a random start 1.25 eps, Wong et
    // al.'s "fast" FGSM (the training attack's PGD step/eps ratio would make it 5x too short).
    o.step_size = o.random_start ? 1.25 * o.eps : o.eps;
  } else if (eps_given && !step_given) {
    // Keep the step/eps ratio of the base attack (2/255 for 8/255): the usual way step sizes
    // are chosen, and it keeps "pgd:eps=4/255" meaningful without spelling out the step.
    o.step_size = base.eps > 0.0 ? base_step * o.eps / base.eps : o.eps / 4.0;
  }
  if (o.norm != "linf" && o.norm != "l2") {
    throw ConfigError(context + ": norm must be linf or l2, got \"" + o.norm + "\"");
  }
  if (o.loss != "ce" && o.loss != "cw" && o.loss != "dlr") {
    throw ConfigError(context + ": loss must be ce, cw or dlr, got \"" + o.loss + "\"");
  }
  config::check_attack_ranges(o, context + " ");
  return NamedAttack{describe_attack(o), o};
}

NamedAttack fit_attack_to_model(NamedAttack attack, int64_t classes) {
  AttackOptions& o = attack.options;
  // FAB's steps read every logit and take no loss; the others check their loss as they run.
  if (!is_fab(o.kind)) detail::check_classes(o, classes);
  // The attacks run against at most every other class (AutoAttack's 9 targets on a 5-class
  // model are 4): the name and the report say how many ran.
  if (is_targeted(o.kind) && o.targets > classes - 1 && classes >= 2) {
    o.targets = classes - 1;
    attack.name = describe_attack(o);
  }
  return attack;
}

}  // namespace advft::attacks
