#include "util/xml.h"

#include "util/error.h"

#include <libxml/parser.h>
#include <libxml/xpathInternals.h>

namespace cloudlet::xml {

DocPtr parse(const std::string &text, const std::string &what) {
	if (text.size() > 64u * 1024 * 1024)
		fail(CLOUDLET_E_CORRUPT, what + ": XML larger than 64 MiB");
	xmlDoc *doc = xmlReadMemory(text.data(), static_cast<int>(text.size()), what.c_str(),
	                            nullptr, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlGetLastError();
		std::string why = e && e->message ? e->message : "malformed XML";
		while (!why.empty() && (why.back() == '\n' || why.back() == ' '))
			why.pop_back();
		fail(CLOUDLET_E_CORRUPT, what + ": cannot parse XML: " + why);
	}
	return DocPtr(doc);
}

std::string to_string(xmlDoc *doc) {
	xmlNode *root = xmlDocGetRootElement(doc);
	xmlBuffer *b = xmlBufferCreate();
	if (!b)
		fail(CLOUDLET_E_NOMEM, "xmlBufferCreate");
	xmlNodeDump(b, doc, root, 0, 1);
	std::string out(reinterpret_cast<const char *>(xmlBufferContent(b)),
	                static_cast<size_t>(xmlBufferLength(b)));
	xmlBufferFree(b);
	return out + "\n";
}

std::vector<xmlNode *> select(xmlDoc *doc, const std::string &expr, xmlNode *node) {
	std::vector<xmlNode *> out;
	xmlXPathContext *ctx = xmlXPathNewContext(doc);
	if (!ctx)
		fail(CLOUDLET_E_NOMEM, "xmlXPathNewContext");
	ctx->node = node ? node : xmlDocGetRootElement(doc);
	xmlXPathObject *res = xmlXPathEvalExpression(reinterpret_cast<const xmlChar *>(expr.c_str()), ctx);
	if (!res) {
		xmlXPathFreeContext(ctx);
		fail(CLOUDLET_E_INTERNAL, "invalid XPath expression: " + expr);
	}
	if (res->type == XPATH_NODESET && res->nodesetval)
		for (int i = 0; i < res->nodesetval->nodeNr; i++)
			out.push_back(res->nodesetval->nodeTab[i]);
	xmlXPathFreeObject(res);
	xmlXPathFreeContext(ctx);
	return out;
}

std::string text(xmlNode *node) {
	xmlChar *c = xmlNodeGetContent(node);
	std::string s = c ? reinterpret_cast<const char *>(c) : "";
	xmlFree(c);
	return s;
}

std::optional<std::string> value(xmlDoc *doc, const std::string &expr, xmlNode *node) {
	auto nodes = select(doc, expr, node);
	if (nodes.empty())
		return std::nullopt;
	return text(nodes.front());
}

std::optional<std::string> attr(xmlNode *node, const char *name) {
	xmlChar *v = xmlGetProp(node, reinterpret_cast<const xmlChar *>(name));
	if (!v)
		return std::nullopt;
	std::string s = reinterpret_cast<const char *>(v);
	xmlFree(v);
	return s;
}

DocPtr new_doc(const char *root_name) {
	xmlDoc *doc = xmlNewDoc(reinterpret_cast<const xmlChar *>("1.0"));
	if (!doc)
		fail(CLOUDLET_E_NOMEM, "xmlNewDoc");
	DocPtr out(doc);
	xmlNode *root = xmlNewNode(nullptr, reinterpret_cast<const xmlChar *>(root_name));
	if (!root)
		fail(CLOUDLET_E_NOMEM, "xmlNewNode");
	xmlDocSetRootElement(doc, root);
	return out;
}

xmlNode *add(xmlNode *parent, const char *name, const std::string &content,
             std::initializer_list<std::pair<const char *, std::string>> attrs) {
	xmlNode *n = xmlNewChild(parent, nullptr, reinterpret_cast<const xmlChar *>(name), nullptr);
	if (!n)
		fail(CLOUDLET_E_NOMEM, "xmlNewChild");
	if (!content.empty())
		xmlNodeAddContent(n, reinterpret_cast<const xmlChar *>(content.c_str()));
	for (const auto &[k, v] : attrs)
		set_attr(n, k, v);
	return n;
}

void set_attr(xmlNode *node, const char *name, const std::string &value) {
	if (!xmlSetProp(node, reinterpret_cast<const xmlChar *>(name),
	                reinterpret_cast<const xmlChar *>(value.c_str())))
		fail(CLOUDLET_E_NOMEM, "xmlSetProp");
}

} // namespace cloudlet::xml
