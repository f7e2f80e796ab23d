"""The privacy notice a requester reads before filing, and its version, which the appeal records when
they agree. A changed notice gets a new version, so every appeal says which words were agreed to."""

NOTICE_VERSION = "2026-12"

# What is collected, why, how long, who sees it: said as the system does it (access.py, the masks).
NOTICE = {
    "zh": ("我们收集您填写的诉求内容、地点，以及您留下的姓名、电话、电子邮箱，只用于办理和答复您的诉求。"
           "您的联系方式只有承办部门能看到，其他工作人员和公开页面只看到遮挡后的信息（如 139****5678），"
           "公开统计不含任何个人信息。诉求记录按本市政务档案规定保存。您可以选择匿名（不留联系方式），"
           "也可以选择不向承办部门显示姓名。"),
    "en": ("We collect what you write, the place, and the name, phone and e-mail you give, only to handle "
           "and answer your appeal. Only the department handling it sees your contact details; other staff "
           "and public pages see them masked (like 139****5678), and public figures hold no personal data. "
           "The record is kept as the city's records rules require. You may file anonymously (no contact "
           "details) or keep your name from the department."),
}
