// Small RAII layer over libxml2: parse a document, run XPath queries, and
// build or edit documents as trees (never by string replacement).
#pragma once

#include <libxml/tree.h>
#include <libxml/xpath.h>

#include <memory>
#include <initializer_list>
#include <optional>
#include <utility>
#include <string>
#include <vector>

namespace cloudlet::xml {

struct DocFree {
	void operator()(xmlDoc *d) const { xmlFreeDoc(d); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocFree>;

// Parses `text` (named `what` in error messages); throws CLOUDLET_E_CORRUPT
// with libxml2's reason on malformed input. Network access and entity
// expansion are disabled.
DocPtr parse(const std::string &text, const std::string &what);

// Serialises a document (without the XML declaration).
std::string to_string(xmlDoc *doc);

// Evaluates `expr` relative to `node` (the root element when null).
std::vector<xmlNode *> select(xmlDoc *doc, const std::string &expr, xmlNode *node = nullptr);

// The string value of the first match, if any.
std::optional<std::string> value(xmlDoc *doc, const std::string &expr, xmlNode *node = nullptr);

// An attribute's value, if present.
std::optional<std::string> attr(xmlNode *node, const char *name);

// The text content of a node.
std::string text(xmlNode *node);

// Builds documents as trees: content and attribute values are escaped by
// libxml2, so no input can change the document's structure.
DocPtr new_doc(const char *root_name);
xmlNode *add(xmlNode *parent, const char *name, const std::string &content = {},
             std::initializer_list<std::pair<const char *, std::string>> attrs = {});
void set_attr(xmlNode *node, const char *name, const std::string &value);

} // namespace cloudlet::xml
