/* Test data: the conversation test cases of llama.cpp's tests/test-chat-template.cpp at commit
 * c392e5094 (a model's name, its Jinja chat template, and the text llama_chat_apply_template
 * produces for the fixed conversation with add_ass = true), extracted by
 * scripts/chat-testdata.py. Data only, no code of llama.cpp's; regenerate, do not edit. */
#ifndef PF_TESTS_DATA_CHAT_CASES_H
#define PF_TESTS_DATA_CHAT_CASES_H

struct chat_case {
    const char *model;    /* the model the template comes from */
    const char *jinja;    /* its tokenizer.chat_template */
    const char *expected; /* llama.cpp's output for chat_conversation, add_ass = true */
};

static const struct chat_case chat_cases[] = {
    {
        /* model */
        "teknium/OpenHermes-2.5-Mistral-7B",
        /* jinja */
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
        "}}{% endif %}",
        /* expected */
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
        "Hi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
        "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
        "<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n",
    },
    {
        /* model */
        "mistralai/Mistral-7B-Instruct-v0.2 (NOTE: Old pre-v1 without a system prompt)",
        /* jinja */
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % "
        "2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/.."
        ".') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' "
        "[/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else "
        "%}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
        /* expected */
        "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am "
        "an assistant   </s>[INST] Another question [/INST]",
    },
    {
        /* model */
        "TheBloke/FusionNet_34Bx2_MoE-AWQ",
        /* jinja */
        "{%- for idx in range(0, messages|length) -%}\n{%- if messages[idx]['role'] == 'user' -%}\n"
        "{%- if idx > 1 -%}\n{{- bos_token + '[INST] ' + messages[idx]['content'] + ' [/INST]' -}}\n"
        "{%- else -%}\n{{- messages[idx]['content'] + ' [/INST]' -}}\n"
        "{%- endif -%}\n{% elif messages[idx]['role'] == 'system' %}\n"
        "{{- '[INST] <<SYS>>\\n' + messages[idx]['content'] + '\\n<</SYS>>\\n\\n' -}}\n"
        "{%- elif messages[idx]['role'] == 'assistant' -%}\n"
        "{{- ' '  + messages[idx]['content'] + ' ' + eos_token -}}\n"
        "{% endif %}\n{% endfor %}",
        /* expected */
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n"
        "\nHello [/INST]Hi there</s><s>[INST] Who are you [/INST]   I am an assistant   </s><s>[INST] "
        "Another question [/INST]",
    },
    {
        /* model */
        "bofenghuang/vigogne-2-70b-chat",
        /* jinja */
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% "
        "set system_message = messages[0]['content'] %}{% elif true == true and not '<<SYS>>' in "
        "messages[0]['content'] %}{% set loop_messages = messages %}{% set system_message = 'Vous êtes "
        "Vigogne, un assistant IA créé par Zaion Lab. Vous suivez extrêmement bien les instructions. "
        "Aidez autant que vous le pouvez.' %}{% else %}{% set loop_messages = messages %}{% set "
        "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == "
        "'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
        "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != "
        "false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
        "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
        "message['role'] == 'user' %}{{ '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
        "message['role'] == 'system' %}{{ '<<SYS>>\\n' + content.strip() + '\\n<</SYS>>\\n\\n' }}{% elif "
        "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% "
        "endfor %}",
        /* expected */
        "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n"
        "\nHello [/INST]Hi there</s>[INST] Who are you [/INST]I am an assistant</s>[INST] Another "
        "question [/INST]",
    },
    {
        /* model */
        "mlabonne/AlphaMonarch-7B",
        /* jinja */
        "{% for message in messages %}{{bos_token + message['role'] + '\\n' + message['content'] + "
        "eos_token + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ bos_token + 'assistant\\n' }}{% "
        "endif %}",
        /* expected */
        "system\nYou are a helpful assistant</s>\n<s>user\n"
        "Hello</s>\n<s>assistant\nHi there</s>\n<s>user\nWho are you</s>\n"
        "<s>assistant\n   I am an assistant   </s>\n<s>user\n"
        "Another question</s>\n<s>assistant\n",
    },
    {
        /* model */
        "google/gemma-7b-it",
        /* jinja */
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% "
        "endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == "
        "0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') "
        "}}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set "
        "role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | "
        "trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt "
        "%}{{'<start_of_turn>model\\n'}}{% endif %}",
        /* expected */
        "<start_of_turn>user\nYou are a helpful assistant\n"
        "\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n"
        "<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\n"
        "I am an assistant<end_of_turn>\n<start_of_turn>user\n"
        "Another question<end_of_turn>\n<start_of_turn>model\n",
    },
    {
        /* model */
        "OrionStarAI/Orion-14B-Chat",
        /* jinja */
        "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if message['role'] "
        "== 'user' %}{{ 'Human: ' + message['content'] + '\\n\\nAssistant: ' + eos_token }}{% elif "
        "message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
        /* expected */
        "Human: You are a helpful assistant\n\nHello\n\nAssistant: </s>Hi there</s>Human: Who are you\n"
        "\nAssistant: </s>   I am an assistant   </s>Human: Another question\n"
        "\nAssistant: </s>",
    },
    {
        /* model */
        "openchat/openchat-3.5-0106",
        /* jinja */
        "{{ bos_token }}{% for message in messages %}{{ 'GPT4 Correct ' + message['role'].title() + ': ' "
        "+ message['content'] + '<|end_of_turn|>'}}{% endfor %}{% if add_generation_prompt %}{{ 'GPT4 "
        "Correct Assistant:' }}{% endif %}",
        /* expected */
        "You are a helpful assistant<|end_of_turn|>GPT4 Correct User: Hello<|end_of_turn|>GPT4 Correct "
        "Assistant: Hi there<|end_of_turn|>GPT4 Correct User: Who are you<|end_of_turn|>GPT4 Correct "
        "Assistant:    I am an assistant   <|end_of_turn|>GPT4 Correct User: Another "
        "question<|end_of_turn|>GPT4 Correct Assistant:",
    },
    {
        /* model */
        "deepseek-ai/deepseek-coder-33b-instruct",
        /* jinja */
        "{% if not add_generation_prompt is defined %}\n{% set add_generation_prompt = false %}\n"
        "{% endif %}\n{%- set ns = namespace(found=false) -%}\n"
        "{%- for message in messages -%}\n    {%- if message['role'] == 'system' -%}\n"
        "        {%- set ns.found = true -%}\n    {%- endif -%}\n"
        "{%- endfor -%}\n{{bos_token}}{%- if not ns.found -%}\n"
        "{{'You are an AI programming assistant, utilizing the Deepseek Coder model, developed by "
        "Deepseek Company, and you only answer questions related to computer science. For politically "
        "sensitive questions, security and privacy issues, and other non-computer science questions, you "
        "will refuse to answer\\n'}}\n{%- endif %}\n{%- for message in messages %}\n"
        "    {%- if message['role'] == 'system' %}\n{{ message['content'] }}\n"
        "    {%- else %}\n        {%- if message['role'] == 'user' %}\n"
        "{{'### Instruction:\\n' + message['content'] + '\\n'}}\n"
        "        {%- else %}\n{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n"
        "        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n"
        "{% if add_generation_prompt %}\n{{'### Response:'}}\n"
        "{% endif %}",
        /* expected */
        "You are a helpful assistant### Instruction:\nHello\n"
        "### Response:\nHi there\n<|EOT|>\n### Instruction:\n"
        "Who are you\n### Response:\n   I am an assistant   \n"
        "<|EOT|>\n### Instruction:\nAnother question\n### Response:\n",
    },
    {
        /* model */
        "eachadea/vicuna-13b-1.1",
        /* jinja */
        "{%- for message in messages %}{%- if message['role'] == 'system' -%}{{- '' + message['content'] "
        "+ '\n\n' -}}{%- else -%}{%- if message['role'] == 'user' -%}{{-'USER: ' + message['content'] + "
        "'\n'-}}{%- else -%}{{-'ASSISTANT: ' + message['content'] + '</s>\n"
        "' -}}{%- endif -%}{%- endif -%}{%- endfor -%}{%- if add_generation_prompt "
        "-%}{{-'ASSISTANT:'-}}{%- endif -%}",
        /* expected */
        "You are a helpful assistant\n\nUSER: Hello\nASSISTANT: Hi there</s>\n"
        "USER: Who are you\nASSISTANT:    I am an assistant   </s>\n"
        "USER: Another question\nASSISTANT:",
    },
    {
        /* model */
        "Orca-Vicuna",
        /* jinja */
        "{%- for message in messages %}{%- if message['role'] == 'system' -%}{{-'SYSTEM: ' + "
        "message['content'] + '\n' -}}{%- else -%}{%- if message['role'] == 'user' -%}{{-'USER: ' + "
        "message['content'] + '\n'-}}{%- else -%}{{-'ASSISTANT: ' + message['content'] + '</s>\n"
        "' -}}{%- endif -%}{%- endif -%}{%- endfor -%}{%- if add_generation_prompt "
        "-%}{{-'ASSISTANT:'-}}{%- endif -%}",
        /* expected */
        "SYSTEM: You are a helpful assistant\nUSER: Hello\n"
        "ASSISTANT: Hi there</s>\nUSER: Who are you\nASSISTANT:    I am an assistant   </s>\n"
        "USER: Another question\nASSISTANT:",
    },
    {
        /* model */
        "CohereForAI/c4ai-command-r-plus",
        /* jinja */
        "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% "
        "set system_message = messages[0]['content'] %}{% elif false == true %}{% set loop_messages = "
        "messages %}{% set system_message = 'You are Command-R, a brilliant, sophisticated, AI-assistant "
        "trained to assist human users by providing thorough responses. You are trained by Cohere.' %}{% "
        "else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% if "
        "system_message != false %}{{ '<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>' + system_message + "
        "'<|END_OF_TURN_TOKEN|>' }}{% endif %}{% for message in loop_messages %}{% if (message['role'] "
        "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
        "user/assistant/user/assistant/...') }}{% endif %}{% set content = message['content'] %}{% if "
        "message['role'] == 'user' %}{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() + "
        "'<|END_OF_TURN_TOKEN|>' }}{% elif message['role'] == 'assistant' %}{{ "
        "'<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>'  + content.strip() + '<|END_OF_TURN_TOKEN|>' }}{% "
        "endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>' "
        "}}{% endif %}",
        /* expected */
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a helpful assistant<|END_OF_TURN_TOKEN|><|START_O"
        "F_TURN_TOKEN|><|USER_TOKEN|>Hello<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hi"
        " there<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Who are "
        "you<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>I am an "
        "assistant<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|USER_TOKEN|>Another "
        "question<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    },
    {
        /* model */
        "Llama-3",
        /* jinja */
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
        "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n"
        "\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = "
        "bos_token + content %}{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_"
        "header_id|>\n\n' }}",
        /* expected */
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_heade"
        "r_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        "\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n"
        "\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n"
        "\n",
    },
    {
        /* model */
        "Phi-3-mini",
        /* jinja */
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + "
        "'\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n"
        "'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n"
        "'}}{% endif %}{% endfor %}",
        /* expected */
        "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\n"
        "Hello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\n"
        "Who are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n"
        "<|user|>\nAnother question<|end|>\n<|assistant|>\n",
    },
    {
        /* model */
        "Phi-3-small",
        /* jinja */
        "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n"
        "' + message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ "
        "'<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}",
        /* expected */
        "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\n"
        "Hello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\n"
        "Who are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n"
        "<|user|>\nAnother question<|end|>\n<|assistant|>\n",
    },
    {
        /* model */
        "Phi-3-medium",
        /* jinja */
        "{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n"
        "' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n"
        "'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n"
        "'}}{% endif %}{% endfor %}",
        /* expected */
        "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\n"
        "Hello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\n"
        "Who are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n"
        "<|user|>\nAnother question<|end|>\n<|assistant|>\n",
    },
    {
        /* model */
        "Phi-3-vision",
        /* jinja */
        "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n"
        "' + message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt and "
        "messages[-1]['role'] != 'assistant' %}{{- '<|assistant|>\n"
        "' -}}{% endif %}",
        /* expected */
        "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\n"
        "Hello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\n"
        "Who are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n"
        "<|user|>\nAnother question<|end|>\n<|assistant|>\n",
    },
    {
        /* model */
        "ChatGLM3",
        /* jinja */
        "{% for message in messages %}{% if loop.first %}[gMASK]sop<|{{ message['role'] }}|>\n"
        " {{ message['content'] }}{% else %}<|{{ message['role'] }}|>\n"
        " {{ message['content'] }}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% "
        "endif %}",
        /* expected */
        "[gMASK]sop<|system|>\n You are a helpful assistant<|user|>\n"
        " Hello<|assistant|>\n Hi there<|user|>\n Who are you<|assistant|>\n"
        "    I am an assistant   <|user|>\n Another question<|assistant|>",
    },
    {
        /* model */
        "ChatGLM4",
        /* jinja */
        "[gMASK]<sop>{% for item in messages %}{% if item['tools'] is defined %}<|system|>\n"
        "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱AI训练的语言模型 GLM-4 模型开发的，你的任务是针对用户的问题和要求提供适当的答复和支持。\n"
        "\n# 可用工具{% set tools = item['tools'] %}{% for tool in tools %}{% if tool['type'] == 'function' "
        "%}\n\n## {{ tool['function']['name'] }}\n\n{{ tool['function'] | tojson(indent=4) }}\n"
        "......{% endif %}{% endfor %}{% endif %}{% if item['content'] %}<|{{ item['role'] }}|>{{ "
        "item['metadata'] }}\n{{ item['content'] }}{% endif %}{% endfor %}{% if add_generation_prompt "
        "%}<|assistant|>{% endif %}",
        /* expected */
        "[gMASK]<sop><|system|>\nYou are a helpful assistant<|user|>\n"
        "Hello<|assistant|>\nHi there<|user|>\nWho are you<|assistant|>\n"
        "   I am an assistant   <|user|>\nAnother question<|assistant|>",
    },
    {
        /* model */
        "GLMEdge",
        /* jinja */
        "{% for item in messages %}{% if item['role'] == 'system' %}<|system|>\n"
        "{{ item['content'] }}{% elif item['role'] == 'user' %}<|user|>\n"
        "{{ item['content'] }}{% elif item['role'] == 'assistant' %}<|assistant|>\n"
        "{{ item['content'] }}{% endif %}{% endfor %}<|assistant|>",
        /* expected */
        "<|system|>\nYou are a helpful assistant<|user|>\n"
        "Hello<|assistant|>\nHi there<|user|>\nWho are you<|assistant|>\n"
        "   I am an assistant   <|user|>\nAnother question<|assistant|>",
    },
    {
        /* model */
        "MiniCPM-3B-OpenHermes-2.5-v2-GGUF",
        /* jinja */
        "{% for message in messages %}{% if message['role'] == 'user' %}{{'<用户>' + "
        "message['content'].strip() + '<AI>'}}{% else %}{{message['content'].strip()}}{% endif %}{% "
        "endfor %}",
        /* expected */
        "You are a helpful assistant<用户>Hello<AI>Hi there<用户>Who are you<AI>I am an assistant<用户>Another "
        "question<AI>",
    },
    {
        /* model */
        "DeepSeek-V2",
        /* jinja */
        "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif "
        "%}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + "
        "message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + "
        "message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + "
        "'\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
        /* expected */
        "You are a helpful assistant\n\nUser: Hello\n\nAssistant: Hi there<｜end▁of▁sentence｜>User: Who "
        "are you\n\nAssistant:    I am an assistant   <｜end▁of▁sentence｜>User: Another question\n"
        "\nAssistant:",
    },
    {
        /* model */
        "ibm-granite/granite-3.0-8b-instruct",
        /* jinja */
        "{%- if tools %}\n    {{- '<|start_of_role|>available_tools<|end_of_role|>\n"
        "' }}\n    {%- for tool in tools %}\n    {{- tool | tojson(indent=4) }}\n"
        "    {%- if not loop.last %}\n        {{- '\n\n' }}\n"
        "    {%- endif %}\n    {%- endfor %}\n    {{- '<|end_of_text|>\n"
        "' }}\n{%- endif %}\n{%- for message in messages %}\n"
        "    {%- if message['role'] == 'system' %}\n    {{- '<|start_of_role|>system<|end_of_role|>' + "
        "message['content'] + '<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'user' %}\n"
        "    {{- '<|start_of_role|>user<|end_of_role|>' + message['content'] + '<|end_of_text|>\n"
        "' }}\n    {%- elif message['role'] == 'assistant' %}\n"
        "    {{- '<|start_of_role|>assistant<|end_of_role|>'  + message['content'] + '<|end_of_text|>\n"
        "' }}\n    {%- elif message['role'] == 'assistant_tool_call' %}\n"
        "    {{- '<|start_of_role|>assistant<|end_of_role|><|tool_call|>' + message['content'] + "
        "'<|end_of_text|>\n' }}\n    {%- elif message['role'] == 'tool_response' %}\n"
        "    {{- '<|start_of_role|>tool_response<|end_of_role|>' + message['content'] + "
        "'<|end_of_text|>\n' }}\n    {%- endif %}\n    {%- if loop.last and add_generation_prompt %}\n"
        "    {{- '<|start_of_role|>assistant<|end_of_role|>' }}\n"
        "    {%- endif %}\n{%- endfor %}",
        /* expected */
        "<|start_of_role|>system<|end_of_role|>You are a helpful assistant<|end_of_text|>\n"
        "<|start_of_role|>user<|end_of_role|>Hello<|end_of_text|>\n"
        "<|start_of_role|>assistant<|end_of_role|>Hi there<|end_of_text|>\n"
        "<|start_of_role|>user<|end_of_role|>Who are you<|end_of_text|>\n"
        "<|start_of_role|>assistant<|end_of_role|>   I am an assistant   <|end_of_text|>\n"
        "<|start_of_role|>user<|end_of_role|>Another question<|end_of_text|>\n"
        "<|start_of_role|>assistant<|end_of_role|>\n",
    },
    {
        /* model */
        "mistralai/Mistral-7B-Instruct-v0.2 (mistralai 'v1' template with a system prompt)",
        /* jinja */
        "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] "
        "%}\n    {%- set loop_messages = messages[1:] %}\n"
        "{%- else %}\n    {%- set loop_messages = messages %}\n"
        "{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n"
        "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
        "        {{- raise_exception('After the optional system message, conversation roles must "
        "alternate user/assistant/user/assistant/...') }}\n"
        "    {%- endif %}\n    {%- if message['role'] == 'user' %}\n"
        "        {%- if loop.first and system_message is defined %}\n"
        "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
        "        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
        "        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n"
        "        {{- ' ' + message['content'] + eos_token}}\n"
        "    {%- else %}\n        {{- raise_exception('Only user and assistant roles are supported, with "
        "the exception of an initial optional system message!') }}\n"
        "    {%- endif %}\n{%- endfor %}\n",
        /* expected */
        " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    "
        "I am an assistant   </s> [INST] Another question [/INST]",
    },
    {
        /* model */
        "Mistral-Large-Instruct-2407 (mistralai 'v3' template; modified to have system prompt at start)",
        /* jinja */
        "{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = "
        "messages[0][\"content\"] %}\n    {%- set loop_messages = messages[1:] %}\n"
        "{%- else %}\n    {%- set loop_messages = messages %}\n"
        "{%- endif %}\n{%- if not tools is defined %}\n    {%- set tools = none %}\n"
        "{%- endif %}\n{%- set user_messages = loop_messages | selectattr(\"role\", \"equalto\", "
        "\"user\") | list %}\n\n{#- This block checks for alternating user/assistant messages, skipping "
        "tool calling messages #}\n{%- set ns = namespace() %}\n"
        "{%- set ns.index = 0 %}\n{%- for message in loop_messages %}\n"
        "    {%- if not (message.role == \"tool\" or message.role == \"tool_results\" or "
        "(message.tool_calls is defined and message.tool_calls is not none)) %}\n"
        "        {%- if (message[\"role\"] == \"user\") != (ns.index % 2 == 0) %}\n"
        "            {{- raise_exception(\"After the optional system message, conversation roles must "
        "alternate user/assistant/user/assistant/...\") }}\n"
        "        {%- endif %}\n        {%- set ns.index = ns.index + 1 %}\n"
        "    {%- endif %}\n{%- endfor %}\n\n{{- bos_token }}\n"
        "{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n"
        "        {%- if tools is not none and (message == user_messages[-1]) %}\n"
        "            {{- \"[AVAILABLE_TOOLS] [\" }}\n            {%- for tool in tools %}\n"
        "                {%- set tool = tool.function %}\n"
        "                {{- '{\"type\": \"function\", \"function\": {' }}\n"
        "                {%- for key, val in tool.items() if key != \"return\" %}\n"
        "                    {%- if val is string %}\n                        {{- '\"' + key + '\": \"' "
        "+ val + '\"' }}\n                    {%- else %}\n"
        "                        {{- '\"' + key + '\": ' + val|tojson }}\n"
        "                    {%- endif %}\n                    {%- if not loop.last %}\n"
        "                        {{- \", \" }}\n                    {%- endif %}\n"
        "                {%- endfor %}\n                {{- \"}}\" }}\n"
        "                {%- if not loop.last %}\n                    {{- \", \" }}\n"
        "                {%- else %}\n                    {{- \"]\" }}\n"
        "                {%- endif %}\n            {%- endfor %}\n"
        "            {{- \"[/AVAILABLE_TOOLS]\" }}\n            {%- endif %}\n"
        "        {%- if loop.last and system_message is defined %}\n"
        "            {{- \"[INST] \" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" "
        "}}\n        {%- else %}\n            {{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}\n"
        "        {%- endif %}\n    {%- elif message.tool_calls is defined and message.tool_calls is not "
        "none %}\n        {{- \"[TOOL_CALLS] [\" }}\n        {%- for tool_call in message.tool_calls %}\n"
        "            {%- set out = tool_call.function|tojson %}\n"
        "            {{- out[:-1] }}\n            {%- if not tool_call.id is defined or "
        "tool_call.id|length != 9 %}\n                {{- raise_exception(\"Tool call IDs should be "
        "alphanumeric strings with length 9!\") }}\n            {%- endif %}\n"
        "            {{- ', \"id\": \"' + tool_call.id + '\"}' }}\n"
        "            {%- if not loop.last %}\n                {{- \", \" }}\n"
        "            {%- else %}\n                {{- \"]\" + eos_token }}\n"
        "            {%- endif %}\n        {%- endfor %}\n"
        "    {%- elif message[\"role\"] == \"assistant\" %}\n"
        "        {{- \" \" + message[\"content\"]|trim + eos_token}}\n"
        "    {%- elif message[\"role\"] == \"tool_results\" or message[\"role\"] == \"tool\" %}\n"
        "        {%- if message.content is defined and message.content.content is defined %}\n"
        "            {%- set content = message.content.content %}\n"
        "        {%- else %}\n            {%- set content = message.content %}\n"
        "        {%- endif %}\n        {{- '[TOOL_RESULTS] {\"content\": ' + content|string + \", \" }}\n"
        "        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}\n"
        "            {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length "
        "9!\") }}\n        {%- endif %}\n        {{- '\"call_id\": \"' + message.tool_call_id + "
        "'\"}[/TOOL_RESULTS]' }}\n    {%- else %}\n        {{- raise_exception(\"Only user and assistant "
        "roles are supported, with the exception of an initial optional system message!\") }}\n"
        "    {%- endif %}\n{%- endfor %}\n",
        /* expected */
        "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST] I am "
        "an assistant</s>[INST] Another question[/INST]",
    },
    {
        /* model */
        "Mistral-Nemo-Instruct-2407 (mistralai 'v3-tekken' template; modified to have system prompt at "
        "start)",
        /* jinja */
        "{%- if messages[0][\"role\"] == \"system\" %}\n    {%- set system_message = "
        "messages[0][\"content\"] %}\n    {%- set loop_messages = messages[1:] %}\n"
        "{%- else %}\n    {%- set loop_messages = messages %}\n"
        "{%- endif %}\n{%- if not tools is defined %}\n    {%- set tools = none %}\n"
        "{%- endif %}\n{%- set user_messages = loop_messages | selectattr(\"role\", \"equalto\", "
        "\"user\") | list %}\n\n{#- This block checks for alternating user/assistant messages, skipping "
        "tool calling messages #}\n{%- set ns = namespace() %}\n"
        "{%- set ns.index = 0 %}\n{%- for message in loop_messages %}\n"
        "    {%- if not (message.role == \"tool\" or message.role == \"tool_results\" or "
        "(message.tool_calls is defined and message.tool_calls is not none)) %}\n"
        "        {%- if (message[\"role\"] == \"user\") != (ns.index % 2 == 0) %}\n"
        "            {{- raise_exception(\"After the optional system message, conversation roles must "
        "alternate user/assistant/user/assistant/...\") }}\n"
        "        {%- endif %}\n        {%- set ns.index = ns.index + 1 %}\n"
        "    {%- endif %}\n{%- endfor %}\n\n{{- bos_token }}\n"
        "{%- for message in loop_messages %}\n    {%- if message[\"role\"] == \"user\" %}\n"
        "        {%- if tools is not none and (message == user_messages[-1]) %}\n"
        "            {{- \"[AVAILABLE_TOOLS][\" }}\n            {%- for tool in tools %}\n"
        "                {%- set tool = tool.function %}\n"
        "                {{- '{\"type\": \"function\", \"function\": {' }}\n"
        "                {%- for key, val in tool.items() if key != \"return\" %}\n"
        "                    {%- if val is string %}\n                        {{- '\"' + key + '\": \"' "
        "+ val + '\"' }}\n                    {%- else %}\n"
        "                        {{- '\"' + key + '\": ' + val|tojson }}\n"
        "                    {%- endif %}\n                    {%- if not loop.last %}\n"
        "                        {{- \", \" }}\n                    {%- endif %}\n"
        "                {%- endfor %}\n                {{- \"}}\" }}\n"
        "                {%- if not loop.last %}\n                    {{- \", \" }}\n"
        "                {%- else %}\n                    {{- \"]\" }}\n"
        "                {%- endif %}\n            {%- endfor %}\n"
        "            {{- \"[/AVAILABLE_TOOLS]\" }}\n            {%- endif %}\n"
        "        {%- if loop.last and system_message is defined %}\n"
        "            {{- \"[INST]\" + system_message + \"\\n\\n\" + message[\"content\"] + \"[/INST]\" "
        "}}\n        {%- else %}\n            {{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}\n"
        "        {%- endif %}\n    {%- elif (message.tool_calls is defined and message.tool_calls is not "
        "none) %}\n        {{- \"[TOOL_CALLS][\" }}\n        {%- for tool_call in message.tool_calls %}\n"
        "            {%- set out = tool_call.function|tojson %}\n"
        "            {{- out[:-1] }}\n            {%- if not tool_call.id is defined or "
        "tool_call.id|length != 9 %}\n                {{- raise_exception(\"Tool call IDs should be "
        "alphanumeric strings with length 9!\") }}\n            {%- endif %}\n"
        "            {{- ', \"id\": \"' + tool_call.id + '\"}' }}\n"
        "            {%- if not loop.last %}\n                {{- \", \" }}\n"
        "            {%- else %}\n                {{- \"]\" + eos_token }}\n"
        "            {%- endif %}\n        {%- endfor %}\n"
        "    {%- elif message[\"role\"] == \"assistant\" %}\n"
        "        {{- message[\"content\"] + eos_token}}\n    {%- elif message[\"role\"] == "
        "\"tool_results\" or message[\"role\"] == \"tool\" %}\n"
        "        {%- if message.content is defined and message.content.content is defined %}\n"
        "            {%- set content = message.content.content %}\n"
        "        {%- else %}\n            {%- set content = message.content %}\n"
        "        {%- endif %}\n        {{- '[TOOL_RESULTS]{\"content\": ' + content|string + \", \" }}\n"
        "        {%- if not message.tool_call_id is defined or message.tool_call_id|length != 9 %}\n"
        "            {{- raise_exception(\"Tool call IDs should be alphanumeric strings with length "
        "9!\") }}\n        {%- endif %}\n        {{- '\"call_id\": \"' + message.tool_call_id + "
        "'\"}[/TOOL_RESULTS]' }}\n    {%- else %}\n        {{- raise_exception(\"Only user and assistant "
        "roles are supported, with the exception of an initial optional system message!\") }}\n"
        "    {%- endif %}\n{%- endfor %}\n",
        /* expected */
        "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an "
        "assistant   </s>[INST]Another question[/INST]",
    },
    {
        /* model */
        "mistralai/Mistral-Large-Instruct-2411 (mistralai 'v7' template)",
        /* jinja */
        "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
        "message['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}{{ '[SYSTEM_PROMPT] ' + "
        "message['content'] + '[/SYSTEM_PROMPT]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + "
        "message['content'] + eos_token }}{% else %}{{ raise_exception('Only user, system and assistant "
        "roles are supported!') }}{% endif %}{% endfor %}",
        /* expected */
        "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi "
        "there</s>[INST] Who are you[/INST]    I am an assistant   </s>[INST] Another question[/INST]",
    },
    {
        /* model */
        "ai-sage/GigaChat-20B-A3B-instruct",
        /* jinja */
        "{% if messages[0]['role'] == 'system' -%}\n    {%- set loop_messages = messages[1:] -%}\n"
        "    {%- set system_message = bos_token + messages[0]['content'] + additional_special_tokens[1] "
        "-%}\n{%- else -%}\n    {%- set loop_messages = messages -%}\n"
        "    {%- set system_message = bos_token + '' -%}\n"
        "{%- endif -%}\n{%- for message in loop_messages %}\n"
        "    {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
        "        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...'"
        ") }}\n    {% endif %}\n    \n    {%- if loop.index0 == 0 -%}\n"
        "        {{ system_message -}}\n    {%- endif -%}\n"
        "    {%- if message['role'] == 'user' -%}\n        {{ message['role'] + "
        "additional_special_tokens[0] + message['content'] + additional_special_tokens[1] -}}\n"
        "        {{ 'available functions' + additional_special_tokens[0] + additional_special_tokens[2] "
        "+ additional_special_tokens[3]  + additional_special_tokens[1] -}}\n"
        "    {%- endif -%}\n    {%- if message['role'] == 'assistant' -%}\n"
        "        {{ message['role'] + additional_special_tokens[0] + message['content'] + "
        "additional_special_tokens[1] -}}\n    {%- endif -%}\n"
        "    {%- if loop.last and add_generation_prompt -%}\n"
        "        {{ 'assistant' + additional_special_tokens[0] -}}\n"
        "    {%- endif -%}\n{%- endfor %}",
        /* expected */
        "<s>You are a helpful assistant<|message_sep|>user<|role_sep|>Hello<|message_sep|>available "
        "functions<|role_sep|>[]<|message_sep|>assistant<|role_sep|>Hi there<|message_sep|>user<|role_sep"
        "|>Who are you<|message_sep|>available functions<|role_sep|>[]<|message_sep|>assistant<|role_sep|"
        ">   I am an assistant   <|message_sep|>user<|role_sep|>Another question<|message_sep|>available "
        "functions<|role_sep|>[]<|message_sep|>assistant<|role_sep|>",
    },
    {
        /* model */
        "Infinigence/Megrez-3B-Instruct",
        /* jinja */
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
        "'<|role_start|>system<|role_end|>你是Megrez-3B-Instruct，将针对用户的问题给出详细的、积极的回答。<|turn_end|>' }}{% "
        "endif %}{{ '<|role_start|>' + message['role'] + '<|role_end|>' + message['content'] + "
        "'<|turn_end|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|role_start|>assistant<|role_end"
        "|>' }}{% endif %}",
        /* expected */
        "<|role_start|>system<|role_end|>You are a helpful assistant<|turn_end|><|role_start|>user<|role_"
        "end|>Hello<|turn_end|><|role_start|>assistant<|role_end|>Hi there<|turn_end|><|role_start|>user<"
        "|role_end|>Who are you<|turn_end|><|role_start|>assistant<|role_end|>   I am an assistant   "
        "<|turn_end|><|role_start|>user<|role_end|>Another question<|turn_end|><|role_start|>assistant<|r"
        "ole_end|>",
    },
    {
        /* model */
        "phi-4",
        /* jinja */
        "{% for message in messages %}{% if (message['role'] == 'system') "
        "%}{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}{% elif "
        "(message['role'] == 'user') %}{{'<|im_start|>user<|im_sep|>' + message['content'] + "
        "'<|im_end|><|im_start|>assistant<|im_sep|>'}}{% elif (message['role'] == 'assistant') "
        "%}{{message['content'] + '<|im_end|>'}}{% endif %}{% endfor %}",
        /* expected */
        "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|><|im_start|>user<|im_sep|>Hello"
        "<|im_end|><|im_start|>assistant<|im_sep|>Hi there<|im_end|><|im_start|>user<|im_sep|>Who are "
        "you<|im_end|><|im_start|>assistant<|im_sep|>   I am an assistant   "
        "<|im_end|><|im_start|>user<|im_sep|>Another question<|im_end|><|im_start|>assistant<|im_sep|>",
    },
};

#endif
